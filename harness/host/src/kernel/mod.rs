//! Getting a kernel image to boot: a path the user gives, or a catalog series resolved to
//! a Debian or Ubuntu package, downloaded, verified, unpacked and cached.

pub mod apt;
pub mod availability;
pub mod build;
pub mod catalog;
pub mod check;
pub mod modules;
pub mod own;
pub mod pins;
pub mod pvh;
pub mod update;
pub mod version;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::arch::Arch;
use crate::config::Config;
use apt::archive;
pub use availability::{is_unavailable, Unavailable};
use catalog::{Catalog, KernelSeries};
pub use version::KernelVersion;

/// What the user asked for with `--kernel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A catalog series, e.g. `6.1`.
    Series(String),
    /// A kernel image file on disk (bzImage, vmlinux, arm64 Image).
    Path(PathBuf),
}

impl KernelSpec {
    /// Anything with a `/` or naming an existing file is a path; the rest is a series.
    pub fn parse(s: &str) -> KernelSpec {
        if s.contains('/') || Path::new(s).is_file() {
            KernelSpec::Path(PathBuf::from(s))
        } else {
            KernelSpec::Series(s.to_string())
        }
    }
}

/// A kernel ready to boot.
#[derive(Debug, Clone, Serialize)]
pub struct KernelImage {
    /// Series name, or `custom` for a path.
    pub series: String,
    /// Guest architecture.
    pub arch: Arch,
    /// The image QEMU boots.
    pub image: PathBuf,
    /// The bzImage behind `image` when `image` is the vmlinux unpacked from it, booted
    /// through PVH: what a `pvh = false` run boots instead ([`KernelImage::as_given`]).
    #[serde(skip)]
    pub compressed: Option<PathBuf>,
    /// The kernel's build config, when known (for feature checks).
    pub config: Option<PathBuf>,
    /// Where it came from, for the user: package and version, or the path.
    pub origin: String,
    /// Its Linux version, from the image itself or else its series, when known.
    pub version: Option<KernelVersion>,
    /// BTF encoded from the build's DWARF, for a kernel without BTF of its own (a 4.x
    /// kernel bpflab built): the guest resolves CO-RE relocations against it.
    pub btf: Option<PathBuf>,
    /// The package it came from, when it is a distribution's: the kernel modules lessons
    /// ask for are taken from it ([`modules`]).
    #[serde(skip)]
    pub package: Option<pins::Pinned>,
}

impl KernelImage {
    /// The same kernel booted from its bzImage, as it is, when it was to boot through PVH.
    pub fn as_given(mut self) -> KernelImage {
        if let Some(bzimage) = self.compressed.take() {
            self.origin = match self.origin.strip_suffix(own::THROUGH_PVH) {
                Some(path) => path.to_string(),
                None => format!("{} (its bzImage, not through PVH)", self.origin),
            };
            self.image = bzimage;
        }
        self
    }
}

/// Finds (and if needed fetches) the kernel for `spec` and `arch`: booted through PVH
/// where it can be, unless the user's settings say otherwise ([`Config::pvh`]).
pub fn obtain(
    spec: &KernelSpec,
    arch: Arch,
    catalog: &Catalog,
    config: &Config,
    refresh: bool,
) -> anyhow::Result<KernelImage> {
    let image = obtain_image(spec, arch, catalog, config, refresh)?;
    Ok(match config.pvh {
        true => image,
        false => image.as_given(),
    })
}

fn obtain_image(
    spec: &KernelSpec,
    arch: Arch,
    catalog: &Catalog,
    config: &Config,
    refresh: bool,
) -> anyhow::Result<KernelImage> {
    match spec {
        KernelSpec::Path(path) => own::obtain(path, arch, config),
        KernelSpec::Series(name) => {
            if let Some((base, flavour)) = build::Flavour::split(name) {
                return build::obtain(config, catalog, base, flavour, arch, crate::config::cpus());
            }
            let series = catalog.find(name).with_context(|| {
                format!(
                    "unknown kernel series `{name}`; known: {} (see `bpflab kernels`), or give a path \
                     to a kernel image",
                    catalog.series_names().join(", ")
                )
            })?;
            if series.package_pattern(arch).is_none() && series.source.is_some() {
                // No prebuilt kernel: the next source in order of preference is a build
                // (which says so when it is not in the cache yet).
                return build::obtain(
                    config,
                    catalog,
                    name,
                    build::Flavour::Minimal,
                    arch,
                    crate::config::cpus(),
                );
            }
            obtain_series(series, arch, config, refresh)
        }
    }
}

/// The cache directory of one series and arch.
pub fn cache_dir(config: &Config, series: &str, arch: Arch) -> PathBuf {
    config
        .cache_dir
        .join("kernels")
        .join(arch.name())
        .join(series)
}

/// Describes what the cache holds for a series, if anything (for `bpflab kernels`).
pub fn cached(config: &Config, series: &str, arch: Arch) -> Option<String> {
    let record = archive::record(&cache_dir(config, series, arch))?;
    Some(format!(
        "{} {}",
        record.package.name, record.package.version
    ))
}

fn obtain_series(
    series: &KernelSeries,
    arch: Arch,
    config: &Config,
    refresh: bool,
) -> anyhow::Result<KernelImage> {
    let pattern = series
        .package_pattern(arch)
        .ok_or_else(|| availability::no_package(series, arch))?;
    let distribution = series.distribution();
    let query = archive::Query {
        what: format!("kernel {}", series.series),
        distribution,
        suites: &series.suites,
        pattern,
        arch,
    };
    let dir = cache_dir(config, &series.series, arch);
    let lock = pins::KernelLock::load(&pins::lock_path())?;
    let pinned = lock.find(&series.series, arch);
    let record = archive::obtain(config, &query, &dir, refresh, pinned, kernel_file)?;
    if !record.files.contains_key("vmlinuz") {
        bail!(
            "{} {} contains no kernel image (looked for boot/vmlinuz-* and usr/lib/modules/*/vmlinuz)",
            record.package.name,
            record.package.version
        );
    }
    let kernel_config = match series.config_package(arch, &record.package.name) {
        Some(name) => Some(obtain_config(
            series, arch, config, &lock, &record, &name, refresh,
        )?),
        None => record
            .files
            .contains_key("config")
            .then(|| dir.join("config")),
    };
    let bzimage = dir.join("vmlinuz");
    let version =
        KernelVersion::of_image(&bzimage).or_else(|| KernelVersion::parse(&series.series));
    // x86-64 kernels with PVH boot faster from their uncompressed vmlinux.
    let pvh = match arch {
        Arch::X86_64 => pvh::vmlinux(
            &bzimage,
            &record.files["vmlinuz"],
            kernel_config.as_deref(),
            &dir,
        )?,
        Arch::Arm64 => None,
    };
    Ok(KernelImage {
        series: series.series.clone(),
        arch,
        version,
        compressed: pvh.is_some().then(|| bzimage.clone()),
        image: pvh.unwrap_or(bzimage),
        config: kernel_config,
        btf: None,
        package: Some(pins::Pinned {
            package: record.package.clone(),
            suite: record.suite.clone(),
        }),
        origin: format!(
            "{} {} ({distribution} {})",
            record.package.name, record.package.version, record.suite
        ),
    })
}

/// Which files of a kernel package bpflab keeps, and under which name. Until 6.x the
/// image is boot/vmlinuz-<release>; Debian's split packages of 7.x put it in
/// usr/lib/modules/<release>/vmlinuz.
fn kernel_file(path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let in_boot = path.starts_with("boot/");
    if (in_boot && file.starts_with("vmlinuz-"))
        || (path.starts_with("usr/lib/modules/") && file == "vmlinuz")
    {
        Some("vmlinuz".into())
    } else if in_boot && file.starts_with("config-") {
        Some("config".into())
    } else {
        None
    }
}

/// Where a package that holds a kernel's config has it: boot/config-<release> until 6.x
/// (Ubuntu's linux-modules-*), usr/lib/modules/<release>/config in Debian's linux-base-*
/// from 7.x.
fn config_file(path: &str) -> Option<String> {
    let in_modules = path
        .strip_prefix("usr/lib/modules/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(release, file)| {
            !release.is_empty() && !release.starts_with('.') && file == "config"
        });
    (path.starts_with("boot/config-") || in_modules).then(|| "config".to_string())
}

/// The config of `kernel` from the package that holds it (`name`, of the kernel's
/// version): the one pinned beside the kernel (the newest, when the kernel itself was
/// `refresh`ed past the lock), cached beside it. Only the config is kept of it.
fn obtain_config(
    series: &KernelSeries,
    arch: Arch,
    config: &Config,
    lock: &pins::KernelLock,
    kernel: &archive::Record,
    name: &str,
    refresh: bool,
) -> anyhow::Result<PathBuf> {
    let query = archive::Query {
        what: format!("the config of kernel {}", series.series),
        distribution: series.distribution(),
        suites: &series.suites,
        pattern: regex_lite::Regex::new(&format!("^{}$", regex_lite::escape(name)))?,
        arch,
    };
    // A pin of another version (the kernel was refreshed past the lock) is not this
    // kernel's config: the newest package of the right name is, and its version must be
    // the kernel's.
    let pinned = lock
        .find_config(&series.series, arch)
        .filter(|p| p.package.name == name && p.package.version == kernel.package.version);
    if pinned.is_none() && !refresh {
        bail!(
            "{name} {}, which holds the config of the pinned kernel {}, is not pinned in {}: \
             run `bpflab kernels update` (only pinned files are used)",
            kernel.package.version,
            series.series,
            pins::lock_path().display()
        );
    }
    let dir = cache_dir(config, &format!("{}.config", series.series), arch);
    // Unpinned, a cached config of this very package is as good as a new download.
    let refresh = pinned.is_none()
        && archive::record(&dir)
            .is_none_or(|r| r.package.name != name || r.package.version != kernel.package.version);
    let record = archive::obtain(config, &query, &dir, refresh, pinned, config_file)?;
    anyhow::ensure!(
        record.package.version == kernel.package.version,
        "{} {} is not of the kernel's version {}: run `bpflab kernels update` to pin both anew",
        record.package.name,
        record.package.version,
        kernel.package.version
    );
    anyhow::ensure!(
        record.files.contains_key("config"),
        "{} {} holds no boot/config-* or usr/lib/modules/*/config: the catalog's `config` for {} names the wrong package",
        record.package.name,
        record.package.version,
        series.series
    );
    Ok(dir.join("config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_specs_are_paths_or_series() {
        assert_eq!(KernelSpec::parse("6.1"), KernelSpec::Series("6.1".into()));
        assert_eq!(
            KernelSpec::parse("7.3-rc"),
            KernelSpec::Series("7.3-rc".into())
        );
        assert_eq!(
            KernelSpec::parse("./bzImage"),
            KernelSpec::Path(PathBuf::from("./bzImage"))
        );
    }

    #[test]
    fn configs_are_found_where_each_packaging_keeps_them() {
        let config = |p| config_file(p);
        assert_eq!(
            config("boot/config-6.8.0-151-generic"),
            Some("config".into())
        );
        assert_eq!(
            config("usr/lib/modules/7.2.13+deb14-cloud-amd64/config"),
            Some("config".into())
        );
        assert_eq!(config("usr/lib/modules/7.2.13/kernel/config"), None);
        assert_eq!(config("usr/lib/modules/../config"), None);
        assert_eq!(config("usr/lib/modules/7.2/System.map"), None);
    }

    #[test]
    fn pvh_turned_off_boots_the_bzimage_and_says_so() {
        let through_pvh = |origin: &str| KernelImage {
            series: "6.1".into(),
            arch: Arch::X86_64,
            image: PathBuf::from("/cache/6.1/vmlinux"),
            compressed: Some(PathBuf::from("/cache/6.1/vmlinuz")),
            config: None,
            origin: origin.into(),
            version: None,
            btf: None,
            package: None,
        };
        let debian = through_pvh("linux-image-6.1 6.1.192-2 (Debian bookworm)").as_given();
        assert_eq!(debian.image, PathBuf::from("/cache/6.1/vmlinuz"));
        assert_eq!(
            debian.origin,
            "linux-image-6.1 6.1.192-2 (Debian bookworm) (its bzImage, not through PVH)"
        );
        let own = through_pvh(&format!("./bzImage{}", own::THROUGH_PVH)).as_given();
        assert_eq!(own.origin, "./bzImage");
        // One that boots as it is already stays as it is.
        let plain = KernelImage {
            compressed: None,
            ..through_pvh("arm64 Image")
        };
        assert_eq!(plain.as_given().image, PathBuf::from("/cache/6.1/vmlinux"));
    }
}
