//! `images/tools.lock`: the exact Debian packages bpflab unpacks for the host programs it
//! brings itself, per Debian release and host arch, with their dependencies as the
//! release's index names them. Written by `bpflab tools update`; read when a host lacks
//! a tool. Only these exact files (this size, this SHA-256) are ever unpacked.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::kernel::apt::index::Package;

/// Where the lock file is: in the source tree, beside the kernels' pins.
pub fn lock_path() -> PathBuf {
    crate::config::source_root().join("images/tools.lock")
}

/// A Debian release bpflab can take tools from on a host of one arch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Its codename (`bookworm`).
    pub release: String,
    /// Debian's name of the host arch (`amd64`).
    pub arch: String,
    /// The version of its C library (`2.36`): a host whose glibc is older cannot run
    /// its programs.
    pub glibc: String,
}

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    /// The release it belongs to.
    pub release: String,
    /// Debian's name of the arch.
    pub arch: String,
    /// The suite (and so the mirror) it comes from: `bookworm` or `bookworm-security`.
    pub suite: String,
    /// Its dependencies, each with its version constraint, one alternative chosen
    /// (`libglib2.0-0 (>= 2.67.3)`); only those a tool's closure can reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    /// The package: name, version, file, size, SHA-256.
    pub package: Package,
}

/// The lock file's contents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolsLock {
    /// Every release pinned, per arch.
    #[serde(default, rename = "release")]
    pub releases: Vec<Release>,
    /// Every package pinned.
    #[serde(default, rename = "package")]
    pub packages: Vec<Locked>,
}

const HEADER: &str = "\
# The exact Debian packages bpflab unpacks into its cache when the host lacks QEMU, clang,
# libbpf's headers or a guest arch's kernel headers: written by `bpflab tools update`, per
# Debian release and host arch, read when a tool is missing. Only these exact files are
# used: if the mirror no longer serves one (or serves other bytes), bpflab stops and says
# so; `bpflab tools update` pins the newest here.
";

impl ToolsLock {
    /// Reads the lock file; a missing file is an empty lock.
    pub fn load(path: &Path) -> anyhow::Result<ToolsLock> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ToolsLock::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the lock file, sorted.
    pub fn save(&mut self, path: &Path) -> anyhow::Result<()> {
        self.releases
            .sort_by(|a, b| (&a.arch, &a.glibc).cmp(&(&b.arch, &b.glibc)));
        self.packages.sort_by(|a, b| {
            (&a.arch, &a.release, &a.package.name).cmp(&(&b.arch, &b.release, &b.package.name))
        });
        let text = format!("{HEADER}\n{}", toml::to_string(self)?);
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The pinned package `name` of a release and arch.
    pub fn find(&self, release: &str, arch: &str, name: &str) -> Option<&Locked> {
        self.packages
            .iter()
            .find(|p| p.release == release && p.arch == arch && p.package.name == name)
    }

    /// Replaces every pin of a release and arch.
    pub fn set_release(&mut self, release: Release, packages: Vec<Locked>) {
        let same = |r: &str, a: &str| r == release.release && a == release.arch;
        self.releases.retain(|r| !same(&r.release, &r.arch));
        self.packages.retain(|p| !same(&p.release, &p.arch));
        self.packages.extend(packages);
        self.releases.push(release);
    }
}
