//! The host programs and headers a run needs — QEMU for the guest's arch, clang,
//! libbpf's headers, the guest arch's kernel headers — from the host when it has them
//! (and new enough), or else from Debian's archive: the packages pinned in
//! `images/tools.lock` for the release whose C library the host can run, only those the
//! host lacks, downloaded and checked like kernels, unpacked in bpflab's cache and run
//! from there without root (their libraries named by `LD_LIBRARY_PATH`, QEMU's firmware
//! by `-L`). `BPFLAB_NO_PROVISION=1`, or `provision = false` in the config file, turns
//! this off: then a missing tool is an error naming the package to install.
//!
//! The guest's programs (bpftool) are always bpflab's: Debian's, of the guest's arch,
//! with every library they load down to glibc, which the guest lacks (`image::guest_tools`
//! puts them in the initramfs).

pub mod cache;
pub mod closure;
pub mod host;
pub mod lock;
pub mod probe;
pub mod release;
pub mod spec;
pub mod update;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::arch::Arch;
use crate::config::Config;
use crate::{term, tools};
pub use spec::Need;

/// Environment variable that turns provisioning off.
pub const OFF_ENV: &str = "BPFLAB_NO_PROVISION";

/// A download's size for people: `34.1 MB`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Whether bpflab may unpack missing tools from Debian's archive.
pub fn enabled(config: &Config) -> bool {
    let off = std::env::var_os(OFF_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    !off && config.provision
}

/// What the host has of a need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnHost {
    /// Present and new enough: the program, or the include directory the headers need
    /// (none beyond clang's defaults).
    Usable {
        /// Its path.
        path: Option<PathBuf>,
        /// Its version, when it says one.
        version: Option<String>,
    },
    /// Present, but older than bpflab works with.
    TooOld {
        /// Its path.
        path: PathBuf,
        /// Its version.
        version: String,
    },
    /// Absent.
    Missing,
}

/// What the host has of `need`.
pub fn on_host(config: &Config, need: Need) -> OnHost {
    let Some(program) = need.program() else {
        return match need.host_headers() {
            Some(path) => OnHost::Usable {
                path,
                version: None,
            },
            None => OnHost::Missing,
        };
    };
    let Some(path) = tools::which(program) else {
        return OnHost::Missing;
    };
    let version = probe::version(&tools::Program::host(path.clone()), &config.cache_dir);
    let old = match (&version, need.minimum()) {
        (Some(v), Some(min)) => probe::major_minor(v).is_some_and(|have| have < min),
        _ => false,
    };
    match version {
        Some(version) if old => OnHost::TooOld { path, version },
        version => OnHost::Usable {
            path: Some(path),
            version,
        },
    }
}

/// Where a need is met.
#[derive(Debug, Clone)]
pub enum Source {
    /// The host's (the program, or the include directory if one is needed).
    Host(Option<PathBuf>),
    /// Unpacked in bpflab's cache.
    Cached(cache::Unpacked),
}

/// `need`, from the host, or else from bpflab's cache (downloading what is missing).
pub fn find(config: &Config, need: Need) -> anyhow::Result<Source> {
    if need.for_guest() {
        return guest(config, need).map(Source::Cached);
    }
    let why = match on_host(config, need) {
        OnHost::Usable { path, .. } => return Ok(Source::Host(path)),
        OnHost::TooOld { path, version } => {
            format!(
                "{} is {version}, older than bpflab works with",
                path.display()
            )
        }
        OnHost::Missing => "the host has none".to_string(),
    };
    let host = Arch::host().context("bpflab runs on x86-64 and arm64 hosts only")?;
    let install = format!("sudo apt-get install {}", need.apt_package(host));
    if !enabled(config) {
        bail!(
            "{} is needed and {why}; install it with: {install} (bpflab does not unpack it \
             from Debian itself: {OFF_ENV} is set, or `provision = false` in {})",
            need.describe(),
            config.path.display()
        );
    }
    let unpacked = cache::obtain(config, need, host).with_context(|| {
        format!(
            "{} is needed and {why}, and bpflab could not unpack it from Debian (or install \
             it with: {install})",
            need.describe()
        )
    })?;
    if !unpacked.fresh {
        term::status_once(format!(
            "{}: from bpflab's cache (Debian {}), as {why}",
            need.describe(),
            unpacked.record.release
        ));
    }
    Ok(Source::Cached(unpacked))
}

/// A program for the guest: always bpflab's (the host's is built for the host, against
/// a C library the guest does not have), unpacked from Debian with all it loads.
pub fn guest(config: &Config, need: Need) -> anyhow::Result<cache::Unpacked> {
    let host = Arch::host().context("bpflab runs on x86-64 and arm64 hosts only")?;
    if !enabled(config) {
        bail!(
            "{} is needed, and only comes from Debian's archive, unpacked by bpflab, which \
             {OFF_ENV} (or `provision = false` in {}) turns off",
            need.describe(),
            config.path.display()
        );
    }
    let unpacked = cache::obtain(config, need, host).with_context(|| {
        format!(
            "{} is needed, and bpflab could not unpack it",
            need.describe()
        )
    })?;
    Ok(unpacked)
}

/// QEMU's system emulator for `arch` guests.
pub fn qemu(config: &Config, arch: Arch) -> anyhow::Result<tools::Program> {
    program(config, Need::Qemu(arch))
}

/// clang.
pub fn clang(config: &Config) -> anyhow::Result<tools::Program> {
    program(config, Need::Clang)
}

/// The include directories clang needs, beyond its defaults, for `arch`'s lessons:
/// libbpf's headers and the guest arch's kernel headers.
pub fn include_dirs(config: &Config, arch: Arch) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for need in [Need::LibbpfHeaders, Need::Uapi(arch)] {
        match find(config, need)? {
            Source::Host(dir) => dirs.extend(dir),
            Source::Cached(unpacked) => dirs.extend(need.include_dirs(&unpacked.root)),
        }
    }
    Ok(dirs)
}

fn program(config: &Config, need: Need) -> anyhow::Result<tools::Program> {
    let name = need.program().context("not a program")?;
    match find(config, need)? {
        Source::Host(path) => Ok(tools::Program::host(path.context("a host program")?)),
        Source::Cached(unpacked) => {
            let program = cached_program(name, &unpacked.root)?;
            if unpacked.fresh && probe::version(&program, &config.cache_dir).is_none() {
                let output = program.command().arg("--version").output();
                let said = match output {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                bail!(
                    "the {name} bpflab unpacked into {} does not run here: {said}",
                    unpacked.root.display()
                );
            }
            Ok(program)
        }
    }
}

/// How to run the program `name` of an unpacked root: its binary, with the root's
/// library directories first on the loader's path (the host's glibc loads them), and,
/// for QEMU, the root's data directory for firmware.
pub fn cached_program(name: &str, root: &Path) -> anyhow::Result<tools::Program> {
    let path = root.join("usr/bin").join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} holds no usr/bin/{name}: its packages do not provide it",
        root.display()
    );
    let triple = Arch::host().map_or("x86_64-linux-gnu", Arch::gnu_triple);
    let mut libraries: Vec<PathBuf> = [
        format!("usr/lib/{triple}"),
        format!("lib/{triple}"),
        "usr/lib".into(),
        "lib".into(),
    ]
    .iter()
    .map(|dir| root.join(dir))
    .filter(|dir| dir.is_dir())
    .collect();
    if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
        libraries.extend(std::env::split_paths(&existing));
    }
    let mut program = tools::Program::host(path);
    program.env.push((
        "LD_LIBRARY_PATH".into(),
        std::env::join_paths(libraries).context("a library directory's name holds a `:`")?,
    ));
    let data = root.join("usr/share/qemu");
    if name.starts_with("qemu-") && data.is_dir() {
        program
            .args
            .extend([OsString::from("-L"), data.into_os_string()]);
    }
    Ok(program)
}
