//! The kernel catalog (`images/catalog.toml`): which kernel series exist and where each
//! comes from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use crate::arch::Arch;
use crate::kernel::apt::Distribution;

/// The parsed catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Series used when the user names none.
    pub default: String,
    /// Every known series, oldest first.
    #[serde(rename = "kernel")]
    pub kernels: Vec<KernelSeries>,
    /// Where the guest's busybox (for `--shell`) comes from.
    pub busybox: GuestTool,
}

/// A tool for the guest, from a Debian package.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestTool {
    /// Suites to look in.
    pub suites: Vec<String>,
    /// Package name pattern (the same for every arch).
    pub package: String,
}

/// One kernel series (e.g. `6.1`) and its sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSeries {
    /// The name users type: `6.1`, `7.3-rc`.
    pub series: String,
    /// Suites of its archive to look in, in no particular order: the newest match wins.
    #[serde(default)]
    pub suites: Vec<String>,
    /// Per architecture name (`x86_64`, `arm64`): a regular expression over Debian's
    /// package names.
    #[serde(default)]
    pub debian: BTreeMap<String, String>,
    /// The same over Ubuntu's package names (an entry has Debian's or Ubuntu's: its
    /// suites belong to one archive).
    #[serde(default)]
    pub ubuntu: BTreeMap<String, String>,
    /// Per architecture: the package that holds the kernel's build config when the
    /// kernel's own package does not (Ubuntu's `linux-modules-*`), named from the kernel
    /// package's name: `$1` stands for the pattern's first group. Same version.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Per architecture: the package that holds the kernel's modules when the kernel's
    /// own package does not (Ubuntu's `linux-modules-*`, Debian's from 7.x), named the
    /// same way as `config`. Same version.
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// Where the source comes from, for minimal builds.
    pub source: Option<SourceSpec>,
}

/// Where a series' source comes from (see `bpflab kernels build`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A source package's name pattern (`linux-source-*`) in the series' suites, in the
    /// series' archive (Debian's, or Ubuntu's for the series that come from Ubuntu).
    pub package: Option<String>,
    /// A kernel.org tarball.
    pub kernel_org: Option<String>,
    /// The tarball's SHA-256, once pinned.
    pub sha256: Option<String>,
}

impl Catalog {
    /// The source tree's catalog, `images/catalog.toml`.
    pub fn load_shipped() -> anyhow::Result<Catalog> {
        Catalog::load(&crate::config::source_root().join("images/catalog.toml"))
    }

    /// Reads and checks the catalog file.
    pub fn load(path: &Path) -> anyhow::Result<Catalog> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the kernel catalog {}", path.display()))?;
        Catalog::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses catalog text and checks it is coherent.
    pub fn parse(text: &str) -> anyhow::Result<Catalog> {
        let catalog: Catalog = toml::from_str(text)?;
        if catalog.find(&catalog.default).is_none() {
            anyhow::bail!("default series `{}` is not in the catalog", catalog.default);
        }
        for k in &catalog.kernels {
            k.check().with_context(|| format!("series {}", k.series))?;
        }
        Ok(catalog)
    }

    /// The entry for a series name.
    pub fn find(&self, series: &str) -> Option<&KernelSeries> {
        self.kernels.iter().find(|k| k.series == series)
    }

    /// All series names, for error messages and listings.
    pub fn series_names(&self) -> Vec<&str> {
        self.kernels.iter().map(|k| k.series.as_str()).collect()
    }
}

impl KernelSeries {
    /// The archive the series' packages (and suites) come from.
    pub fn distribution(&self) -> Distribution {
        match self.ubuntu.is_empty() {
            true => Distribution::Debian,
            false => Distribution::Ubuntu,
        }
    }

    fn patterns(&self) -> &BTreeMap<String, String> {
        match self.distribution() {
            Distribution::Debian => &self.debian,
            Distribution::Ubuntu => &self.ubuntu,
        }
    }

    /// The package-name pattern for an architecture, if the series' archive provides a
    /// kernel for it.
    pub fn package_pattern(&self, arch: Arch) -> Option<regex_lite::Regex> {
        let pattern = self.patterns().get(arch.name())?;
        regex_lite::Regex::new(pattern).ok()
    }

    /// The name of the package holding the config of the kernel package `kernel`, when
    /// the catalog says it is another package.
    pub fn config_package(&self, arch: Arch, kernel: &str) -> Option<String> {
        self.companion(&self.config, arch, kernel)
    }

    /// The name of the package holding the modules of the kernel package `kernel`, when
    /// the catalog says it is another package.
    pub fn modules_package(&self, arch: Arch, kernel: &str) -> Option<String> {
        self.companion(&self.modules, arch, kernel)
    }

    /// A package that goes with the kernel package `kernel`, named by `templates`.
    fn companion(
        &self,
        templates: &BTreeMap<String, String>,
        arch: Arch,
        kernel: &str,
    ) -> Option<String> {
        let template = templates.get(arch.name())?;
        let captures = self.package_pattern(arch)?.captures(kernel)?;
        let mut name = String::new();
        captures.expand(template, &mut name);
        Some(name)
    }

    /// What makes an entry unusable, said before anything is fetched.
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.debian.is_empty() || self.ubuntu.is_empty(),
            "it names both Debian and Ubuntu packages, but its suites belong to one archive: \
             make it two series"
        );
        let distribution = self.distribution();
        for (arch, pattern) in self.patterns() {
            arch.parse::<Arch>().map_err(anyhow::Error::msg)?;
            regex_lite::Regex::new(pattern)
                .with_context(|| format!("bad package pattern for {arch}"))?;
        }
        for suite in &self.suites {
            anyhow::ensure!(
                distribution.owns_suite(suite),
                "suite `{suite}` is not one of {distribution}'s (its packages come from \
                 {distribution}'s archive)"
            );
        }
        let companions = [("config", &self.config), ("modules", &self.modules)];
        for (key, templates) in companions {
            for (arch, template) in templates {
                let pattern = self.patterns().get(arch).with_context(|| {
                    format!("{key}.{arch} is given, but no package pattern for {arch}")
                })?;
                anyhow::ensure!(
                    template.contains("$1") && regex_lite::Regex::new(pattern)?.captures_len() > 1,
                    "{key}.{arch} = '{template}' must name the {key} package with `$1`, the \
                     first group of the package pattern '{pattern}'"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_parses_and_names_a_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/catalog.toml");
        let catalog = Catalog::load(&path).unwrap();
        let default = catalog.find(&catalog.default).unwrap();
        assert!(default.package_pattern(Arch::X86_64).is_some());
        assert!(catalog.series_names().contains(&"5.10"));
    }

    #[test]
    fn patterns_select_the_right_packages() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/catalog.toml");
        let catalog = Catalog::load(&path).unwrap();
        let p61 = catalog
            .find("6.1")
            .unwrap()
            .package_pattern(Arch::X86_64)
            .unwrap();
        assert!(p61.is_match("linux-image-6.1.0-53-cloud-amd64-unsigned"));
        assert!(!p61.is_match("linux-image-6.1.0-53-cloud-amd64-dbg"));
        let p72 = catalog
            .find("7.2")
            .unwrap()
            .package_pattern(Arch::X86_64)
            .unwrap();
        assert!(p72.is_match("linux-binary-7.2.13+deb14-cloud-amd64"));
        assert!(!p72.is_match("linux-base-7.2.13+deb14-cloud-amd64"));
    }

    const BUSYBOX: &str = "[busybox]\nsuites = [\"stable\"]\npackage = 'busybox'\n";

    #[test]
    fn rejects_a_default_that_does_not_exist() {
        let err = Catalog::parse(&format!(
            "default = \"9.9\"\n[[kernel]]\nseries = \"6.1\"\n{BUSYBOX}"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("9.9"));
    }

    #[test]
    fn rejects_unknown_architectures() {
        let text = format!(
            "default = \"6.1\"\n[[kernel]]\nseries = \"6.1\"\ndebian.sparc = 'x'\n{BUSYBOX}"
        );
        assert!(Catalog::parse(&text).is_err());
    }

    #[test]
    fn old_series_come_from_ubuntu_with_their_config_package() {
        let catalog = Catalog::load_shipped().unwrap();
        for series in ["4.4", "4.15", "5.4", "5.15", "6.8"] {
            let entry = catalog.find(series).unwrap();
            assert_eq!(entry.distribution(), Distribution::Ubuntu, "{series}");
            // amd64 only: Ubuntu's arm64 archive is not one bpflab reads.
            assert!(entry.package_pattern(Arch::Arm64).is_none(), "{series}");
        }
        let k44 = catalog.find("4.4").unwrap();
        let pattern = k44.package_pattern(Arch::X86_64).unwrap();
        assert!(pattern.is_match("linux-image-unsigned-4.4.0-210-generic"));
        // Not the signed image, not the low-latency flavour, not 4.15 from the HWE stack.
        for other in [
            "linux-image-4.4.0-210-generic",
            "linux-image-unsigned-4.4.0-210-lowlatency",
            "linux-image-unsigned-4.15.0-142-generic",
        ] {
            assert!(!pattern.is_match(other), "{other}");
        }
        assert_eq!(
            k44.config_package(Arch::X86_64, "linux-image-unsigned-4.4.0-210-generic")
                .as_deref(),
            Some("linux-modules-4.4.0-210-generic")
        );
        // Debian's packages carry their config: no second package.
        let k61 = catalog.find("6.1").unwrap();
        assert_eq!(k61.distribution(), Distribution::Debian);
        assert_eq!(
            k61.config_package(Arch::X86_64, "linux-image-6.1.0-56-cloud-amd64-unsigned"),
            None
        );
    }

    #[test]
    fn an_entry_must_keep_to_one_archive_and_its_suites() {
        let entry = |body: &str| {
            Catalog::parse(&format!(
                "default = \"6.1\"\n[[kernel]]\nseries = \"6.1\"\n{body}\n{BUSYBOX}"
            ))
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
        };
        let both =
            entry("suites = [\"sid\"]\ndebian.x86_64 = 'a'\nubuntu.x86_64 = 'b'").unwrap_err();
        assert!(both.contains("both Debian and Ubuntu"), "{both}");
        let foreign = entry("suites = [\"xenial-updates\"]\ndebian.x86_64 = 'a'").unwrap_err();
        assert!(foreign.contains("not one of Debian's"), "{foreign}");
        let no_group = entry(
            "suites = [\"noble-updates\"]\nubuntu.x86_64 = '^linux-image-x$'\n\
             config.x86_64 = 'linux-modules-$1'",
        )
        .unwrap_err();
        assert!(
            no_group.contains("must name the config package"),
            "{no_group}"
        );
        entry(
            "suites = [\"noble-updates\"]\nubuntu.x86_64 = '^linux-image-(x)$'\n\
             config.x86_64 = 'linux-modules-$1'",
        )
        .unwrap();
    }
}
