//! The kernel catalog (`images/catalog.toml`): which kernel series exist and where each
//! comes from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use crate::arch::Arch;

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
    /// Debian suites to look in, in no particular order: the newest match wins.
    #[serde(default)]
    pub suites: Vec<String>,
    /// Per architecture name (`x86_64`, `arm64`): a regular expression over package names.
    #[serde(default)]
    pub debian: BTreeMap<String, String>,
    /// Where the source comes from, for minimal builds.
    pub source: Option<SourceSpec>,
}

/// Where a series' source comes from (see `bpflab kernels build`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A Debian package name pattern (`linux-source-*`) in the series' suites.
    pub debian: Option<String>,
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
            for (arch, pattern) in &k.debian {
                arch.parse::<Arch>().map_err(anyhow::Error::msg)?;
                regex::Regex::new(pattern).with_context(|| {
                    format!("series {}: bad package pattern for {arch}", k.series)
                })?;
            }
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
    /// The Debian package-name pattern for an architecture, if Debian provides this
    /// series for it.
    pub fn debian_pattern(&self, arch: Arch) -> Option<regex::Regex> {
        let pattern = self.debian.get(arch.name())?;
        regex::Regex::new(pattern).ok()
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
        assert!(default.debian_pattern(Arch::X86_64).is_some());
        assert!(catalog.series_names().contains(&"5.10"));
    }

    #[test]
    fn patterns_select_the_right_packages() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/catalog.toml");
        let catalog = Catalog::load(&path).unwrap();
        let p61 = catalog
            .find("6.1")
            .unwrap()
            .debian_pattern(Arch::X86_64)
            .unwrap();
        assert!(p61.is_match("linux-image-6.1.0-53-cloud-amd64-unsigned"));
        assert!(!p61.is_match("linux-image-6.1.0-53-cloud-amd64-dbg"));
        let p72 = catalog
            .find("7.2")
            .unwrap()
            .debian_pattern(Arch::X86_64)
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
}
