//! `images/kernels.lock`: the exact package bpflab boots for each series and arch, so a
//! run can be reproduced. Written by `bpflab kernels update`; read on every run.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::kernel::apt::index;

/// Where the lock file is: in the source tree, beside the catalog.
pub fn lock_path() -> std::path::PathBuf {
    crate::config::source_root().join("images/kernels.lock")
}

/// A package fixed in advance (by the lock file): exactly this file, this hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    /// The package.
    pub package: index::Package,
    /// The suite (and so the mirror) it comes from.
    pub suite: String,
}

/// The lock file's contents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KernelLock {
    /// One entry per (series, arch).
    #[serde(default, rename = "kernel")]
    pub kernels: Vec<LockedKernel>,
    /// One entry per (series, arch) whose kernel's config is in a package of its own
    /// (Ubuntu's `linux-modules-*`), of the same version as the kernel's.
    #[serde(
        default,
        rename = "kernel_config",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configs: Vec<LockedKernel>,
    /// One entry per (series, arch) whose kernel's modules are in a package of their own
    /// (Ubuntu's `linux-modules-*`, Debian's from 7.x), of the same version as the kernel's.
    #[serde(
        default,
        rename = "kernel_modules",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub modules: Vec<LockedKernel>,
    /// One entry per series built from a kernel.org tarball.
    #[serde(default, rename = "source", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<LockedSource>,
    /// One entry per series whose source comes from a Debian `linux-source-*` package.
    #[serde(
        default,
        rename = "source_package",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub source_packages: Vec<LockedSourcePackage>,
    /// One entry per guest tool (busybox, for `--shell`) and arch.
    #[serde(default, rename = "tool", skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<LockedTool>,
}

/// A pinned package of a program for the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedTool {
    /// The tool's name (`busybox`).
    pub tool: String,
    /// Architecture name.
    pub arch: String,
    /// The package, its suite, file and hash.
    #[serde(flatten)]
    pub pinned: Pinned,
}

/// A pinned kernel source package (Debian's `linux-source-*`, the same for every arch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedSourcePackage {
    /// Catalog series.
    pub series: String,
    /// The package, its suite, file and hash.
    #[serde(flatten)]
    pub pinned: Pinned,
}

/// A pinned source tarball (kernel.org): its URL and SHA-256, from kernel.org's
/// `sha256sums.asc` beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedSource {
    /// Catalog series.
    pub series: String,
    /// The tarball.
    pub url: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// One pinned kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedKernel {
    /// Catalog series.
    pub series: String,
    /// Architecture name.
    pub arch: String,
    /// The package, its suite, file and hash.
    #[serde(flatten)]
    pub pinned: Pinned,
}

const HEADER: &str = "\
# The exact kernels bpflab boots, per series and arch: written by `bpflab kernels update`,
# read on every run, with the kernel sources `bpflab kernels build` unpacks. Only these
# exact files are used: if the mirror no longer serves one (or serves other bytes), the run
# stops and says so; `bpflab kernels update` pins the newest here.
";

impl KernelLock {
    /// Reads the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> anyhow::Result<KernelLock> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KernelLock::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the lock file.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!("{HEADER}\n{}", toml::to_string(self)?);
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The pin of a series and arch.
    pub fn find(&self, series: &str, arch: Arch) -> Option<&Pinned> {
        find_in(&self.kernels, series, arch)
    }

    /// The pinned config package of a series and arch.
    pub fn find_config(&self, series: &str, arch: Arch) -> Option<&Pinned> {
        find_in(&self.configs, series, arch)
    }

    /// Sets the pinned config package of a series and arch.
    pub fn set_config(&mut self, series: &str, arch: Arch, pinned: Pinned) {
        set_in(&mut self.configs, series, arch, pinned);
    }

    /// The pinned package holding a kernel's modules, where that is another package.
    pub fn find_modules(&self, series: &str, arch: Arch) -> Option<&Pinned> {
        find_in(&self.modules, series, arch)
    }

    /// Pins the package holding a kernel's modules.
    pub fn set_modules(&mut self, series: &str, arch: Arch, pinned: Pinned) {
        set_in(&mut self.modules, series, arch, pinned);
    }

    /// The pinned SHA-256 of a series' source tarball at `url`, if pinned.
    pub fn source_sha256(&self, series: &str, url: &str) -> Option<&str> {
        self.sources
            .iter()
            .find(|s| s.series == series && s.url == url)
            .map(|s| s.sha256.as_str())
    }

    /// Pins a series' source tarball.
    pub fn set_source(&mut self, series: &str, url: &str, sha256: &str) {
        self.sources.retain(|s| s.series != series);
        self.sources.push(LockedSource {
            series: series.to_string(),
            url: url.to_string(),
            sha256: sha256.to_string(),
        });
        self.sources.sort_by(|a, b| a.series.cmp(&b.series));
    }

    /// The pinned source package of a series.
    pub fn find_source_package(&self, series: &str) -> Option<&Pinned> {
        self.source_packages
            .iter()
            .find(|s| s.series == series)
            .map(|s| &s.pinned)
    }

    /// Pins a series' source package.
    pub fn set_source_package(&mut self, series: &str, pinned: Pinned) {
        self.source_packages.retain(|s| s.series != series);
        self.source_packages.push(LockedSourcePackage {
            series: series.to_string(),
            pinned,
        });
        self.source_packages.sort_by(|a, b| a.series.cmp(&b.series));
    }

    /// The pinned package of a guest tool for an arch.
    pub fn find_tool(&self, tool: &str, arch: Arch) -> Option<&Pinned> {
        self.tools
            .iter()
            .find(|t| t.tool == tool && t.arch == arch.name())
            .map(|t| &t.pinned)
    }

    /// Pins a guest tool's package for an arch.
    pub fn set_tool(&mut self, tool: &str, arch: Arch, pinned: Pinned) {
        self.tools
            .retain(|t| !(t.tool == tool && t.arch == arch.name()));
        self.tools.push(LockedTool {
            tool: tool.to_string(),
            arch: arch.name().to_string(),
            pinned,
        });
        self.tools
            .sort_by(|a, b| (&a.tool, &a.arch).cmp(&(&b.tool, &b.arch)));
    }

    /// Sets the pin of a series and arch.
    pub fn set(&mut self, series: &str, arch: Arch, pinned: Pinned) {
        set_in(&mut self.kernels, series, arch, pinned);
    }
}

fn find_in<'a>(list: &'a [LockedKernel], series: &str, arch: Arch) -> Option<&'a Pinned> {
    list.iter()
        .find(|k| k.series == series && k.arch == arch.name())
        .map(|k| &k.pinned)
}

/// Replaces the entry of (series, arch) in `list`, kept sorted by arch, then series.
fn set_in(list: &mut Vec<LockedKernel>, series: &str, arch: Arch, pinned: Pinned) {
    list.retain(|k| !(k.series == series && k.arch == arch.name()));
    list.push(LockedKernel {
        series: series.to_string(),
        arch: arch.name().to_string(),
        pinned,
    });
    list.sort_by(|a, b| (&a.arch, &a.series).cmp(&(&b.arch, &b.series)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::apt::index::Package;

    fn pin(version: &str) -> Pinned {
        Pinned {
            package: Package {
                name: "linux-image-6.1.0-56-cloud-amd64-unsigned".into(),
                version: version.into(),
                filename: "pool/main/l/linux/x.deb".into(),
                size: 42,
                sha256: "ab".repeat(32),
            },
            suite: "bookworm-security".into(),
        }
    }

    #[test]
    fn pins_round_trip_and_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernels.lock");
        let mut lock = KernelLock::load(&path).unwrap();
        assert!(lock.find("6.1", Arch::X86_64).is_none());
        lock.set("6.1", Arch::X86_64, pin("6.1.1-1"));
        lock.set("6.1", Arch::X86_64, pin("6.1.2-1"));
        lock.save(&path).unwrap();
        let back = KernelLock::load(&path).unwrap();
        assert_eq!(back.kernels.len(), 1);
        assert_eq!(
            back.find("6.1", Arch::X86_64).unwrap().package.version,
            "6.1.2-1"
        );
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("# The exact kernels"));
    }

    #[test]
    fn source_pins_are_per_series_and_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernels.lock");
        let mut lock = KernelLock::default();
        let url = "https://example.invalid/linux-4.4.302.tar.xz";
        lock.set_source("4.4", url, &"cd".repeat(32));
        lock.save(&path).unwrap();
        let back = KernelLock::load(&path).unwrap();
        assert_eq!(
            back.source_sha256("4.4", url),
            Some("cd".repeat(32).as_str())
        );
        // A catalog that moved to another point release is not pinned by the old hash.
        assert_eq!(
            back.source_sha256("4.4", "https://example.invalid/linux-4.4.303.tar.xz"),
            None
        );
    }
}
