//! Where bpflab keeps things, and the user's settings.
//!
//! Settings come from environment variables, then `~/.config/bpflab/config.toml`
//! (or `$BPFLAB_CONFIG`), then defaults. The file is optional.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The user's settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The config file these came from (whether or not it exists), for messages.
    pub path: PathBuf,
    /// Debian mirror for kernels (`http://host/debian`).
    pub debian_mirror: Option<String>,
    /// Debian security mirror.
    pub debian_security_mirror: Option<String>,
    /// Cache directory for kernels and indexes.
    pub cache_dir: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    debian_mirror: Option<String>,
    debian_security_mirror: Option<String>,
    cache_dir: Option<PathBuf>,
}

impl Config {
    /// Reads the config file if there is one.
    pub fn load() -> anyhow::Result<Config> {
        let path = std::env::var_os("BPFLAB_CONFIG")
            .map(PathBuf::from)
            .or_else(|| dirs::config_dir().map(|d| d.join("bpflab/config.toml")))
            .unwrap_or_else(|| PathBuf::from("bpflab.toml"));
        let file: ConfigFile = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("in {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let cache_dir = std::env::var_os("BPFLAB_CACHE_DIR")
            .map(PathBuf::from)
            .or(file.cache_dir)
            .or_else(|| dirs::cache_dir().map(|d| d.join("bpflab")))
            .context("no cache directory: set BPFLAB_CACHE_DIR or HOME")?;
        Ok(Config {
            path,
            debian_mirror: file.debian_mirror,
            debian_security_mirror: file.debian_security_mirror,
            cache_dir,
        })
    }
}

/// The bpflab source tree (lessons, catalog, agent sources). bpflab runs from a checkout:
/// lessons are edited and rebuilt in place.
pub fn source_root() -> PathBuf {
    if let Some(root) = std::env::var_os("BPFLAB_ROOT") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Build products of the source tree (compiled lessons, agents, initramfs images).
pub fn work_dir() -> PathBuf {
    source_root().join("target/bpflab")
}

/// This machine's CPUs: the default for parallel compile jobs and parallel VMs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
