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
    /// Ubuntu mirror for kernels (`http://host/ubuntu`): its main archive, which serves
    /// every pocket.
    pub ubuntu_mirror: Option<String>,
    /// Cache directory for kernels and indexes.
    pub cache_dir: PathBuf,
    /// Whether bpflab may unpack the host tools it lacks (QEMU, clang, headers) from
    /// Debian's archive into its cache (`provision = false` turns it off).
    pub provision: bool,
    /// Whether an x86-64 kernel built with `CONFIG_PVH` boots from the uncompressed
    /// vmlinux inside its bzImage (the default: nothing is decompressed under emulation);
    /// `pvh = false` or `BPFLAB_NO_PVH=1` boots the bzImage itself, through its
    /// decompressor, for whoever is testing that path.
    pub pvh: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    debian_mirror: Option<String>,
    debian_security_mirror: Option<String>,
    ubuntu_mirror: Option<String>,
    cache_dir: Option<PathBuf>,
    provision: Option<bool>,
    pvh: Option<bool>,
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
        let cache_dir = cache_dir(&path, file.cache_dir)?;
        Ok(Config {
            path,
            debian_mirror: file.debian_mirror,
            debian_security_mirror: file.debian_security_mirror,
            ubuntu_mirror: file.ubuntu_mirror,
            cache_dir,
            provision: file.provision.unwrap_or(true),
            pvh: file.pvh.unwrap_or(true) && !env_flag(NO_PVH_ENV),
        })
    }
}

/// Set (to anything but empty or `0`), boots bzImages as they are ([`Config::pvh`]).
pub const NO_PVH_ENV: &str = "BPFLAB_NO_PVH";

/// Whether the environment variable `name` is set to anything but empty or `0`.
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The cache directory: `BPFLAB_CACHE_DIR`, else the config file's `cache_dir`, else
/// `bpflab` in the XDG cache directory. It must be absolute: a relative one would put the
/// cache wherever bpflab happens to be started.
fn cache_dir(config_path: &Path, from_file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let (dir, setting) = match (std::env::var_os("BPFLAB_CACHE_DIR"), from_file) {
        (Some(env), _) => (PathBuf::from(env), "BPFLAB_CACHE_DIR".to_string()),
        (None, Some(dir)) => (dir, format!("cache_dir in {}", config_path.display())),
        (None, None) => {
            let dir = dirs::cache_dir()
                .context("no cache directory: set BPFLAB_CACHE_DIR or HOME")?
                .join("bpflab");
            note_ignored_xdg_cache_home(&dir);
            (dir, "the default cache directory (under HOME)".to_string())
        }
    };
    ensure_absolute(&dir, &setting)?;
    Ok(dir)
}

fn ensure_absolute(dir: &Path, setting: &str) -> anyhow::Result<()> {
    let example = "e.g. /var/tmp/bpflab";
    if dir.as_os_str().is_empty() {
        anyhow::bail!(
            "{setting} is empty: give an absolute path ({example}), or leave it unset for the \
             default (~/.cache/bpflab)"
        );
    }
    if !dir.is_absolute() {
        anyhow::bail!(
            "{setting} is `{}`, a relative path: give an absolute one ({example}), so that the \
             cache does not depend on where bpflab is started",
            dir.display()
        );
    }
    Ok(())
}

/// The XDG spec says a relative `XDG_CACHE_HOME` is to be ignored (the `dirs` crate does),
/// which would surprise someone who set it: say so, once.
fn note_ignored_xdg_cache_home(used: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") else {
        return;
    };
    if xdg.is_empty() || Path::new(&xdg).is_absolute() {
        return;
    }
    ONCE.call_once(|| {
        crate::term::status(format!(
            "XDG_CACHE_HOME is `{}`, a relative path, which the XDG spec says to ignore: \
             using {}",
            Path::new(&xdg).display(),
            used.display()
        ))
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_directory_must_be_absolute() {
        let message =
            |dir: &str| format!("{:#}", ensure_absolute(Path::new(dir), "X").unwrap_err());
        assert!(message("").contains("X is empty: give an absolute path"));
        let relative = message("rel/dir");
        assert!(
            relative.contains("X is `rel/dir`, a relative path"),
            "{relative}"
        );
        ensure_absolute(Path::new("/var/tmp/bpflab"), "X").unwrap();
    }

    #[test]
    fn a_flag_in_the_environment_is_on_unless_empty_or_zero() {
        let name = "BPFLAB_TEST_FLAG_ONLY_HERE";
        std::env::remove_var(name);
        assert!(!env_flag(name));
        for (value, on) in [("1", true), ("yes", true), ("0", false), ("", false)] {
            std::env::set_var(name, value);
            assert_eq!(env_flag(name), on, "{value:?}");
        }
        std::env::remove_var(name);
    }
}
