//! Getting a kernel image to boot: a path the user gives, or a catalog series resolved to
//! a Debian package, downloaded, verified, unpacked and cached.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::arch::Arch;
use crate::catalog::{Catalog, KernelSeries};
use crate::config::Config;
use crate::debian::archive;
use crate::kernel_build;

/// Where the kernel lock file is.
pub fn lock_path() -> PathBuf {
    crate::config::source_root().join("images/kernels.lock")
}

/// Pins the newest package of every Debian-packaged series in the lock file (`bpflab
/// kernels update`), for `arches`. Returns what changed, as lines for the user.
pub fn update_lock(
    catalog: &Catalog,
    config: &Config,
    arches: &[Arch],
) -> anyhow::Result<Vec<String>> {
    let path = lock_path();
    let mut lock = crate::lock::KernelLock::load(&path)?;
    let mut changes = Vec::new();
    for series in &catalog.kernels {
        for &arch in arches {
            let Some(pattern) = series.debian_pattern(arch) else {
                continue;
            };
            let query = archive::Query {
                what: format!("kernel {}", series.series),
                suites: &series.suites,
                pattern,
                arch,
            };
            let newest = archive::newest(config, &query)?;
            let before = lock
                .find(&series.series, arch)
                .map(|p| p.package.version.clone());
            let after = newest.package.version.clone();
            if before.as_deref() != Some(after.as_str()) {
                changes.push(format!(
                    "{} {arch}: {} → {} {after}",
                    series.series,
                    before.unwrap_or_else(|| "(none)".into()),
                    newest.package.name
                ));
            }
            lock.set(&series.series, arch, newest);
        }
    }
    // Sources from kernel.org: the hash kernel.org publishes beside the tarball.
    let http = crate::fetch::agent();
    for series in &catalog.kernels {
        let Some(url) = series.source.as_ref().and_then(|s| s.kernel_org.as_deref()) else {
            continue;
        };
        match kernel_org_sha256(&http, url) {
            Ok(sha) => {
                if lock.source_sha256(&series.series, url) != Some(sha.as_str()) {
                    changes.push(format!("{} source: {url} pinned at {sha}", series.series));
                }
                lock.set_source(&series.series, url, &sha);
            }
            Err(e) => changes.push(format!("{} source: not pinned: {e:#}", series.series)),
        }
    }
    lock.save(&path)?;
    Ok(changes)
}

/// The SHA-256 kernel.org publishes for a tarball, from `sha256sums.asc` in its directory.
fn kernel_org_sha256(http: &ureq::Agent, url: &str) -> anyhow::Result<String> {
    let (dir, file) = url
        .rsplit_once('/')
        .with_context(|| format!("{url} names no file"))?;
    let sums = crate::fetch::fetch_text(http, &format!("{dir}/sha256sums.asc"))?;
    sha256_from_sums(&sums, file).with_context(|| format!("{dir}/sha256sums.asc lists no {file}"))
}

/// Finds `file`'s hash in a `sha256sum`-style listing (`<hex>  <name>` per line; the
/// clear-signed `.asc` wrapper around it is ignored).
pub fn sha256_from_sums(text: &str, file: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (sha, name) = (fields.next()?, fields.next()?);
        (name == file && sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| sha.to_ascii_lowercase())
    })
}

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
    /// The kernel's build config, when known (for feature checks).
    pub config: Option<PathBuf>,
    /// Where it came from, for the user: package and version, or the path.
    pub origin: String,
}

/// Finds (and if needed fetches) the kernel for `spec` and `arch`.
pub fn obtain(
    spec: &KernelSpec,
    arch: Arch,
    catalog: &Catalog,
    config: &Config,
    refresh: bool,
) -> anyhow::Result<KernelImage> {
    match spec {
        KernelSpec::Path(path) => {
            if !path.is_file() {
                bail!("kernel image {} does not exist", path.display());
            }
            // A build config beside the image (`config`, or `<image>.config`) lets bpflab
            // check the kernel before booting it.
            let config = [path.with_extension("config"), path.with_file_name("config")]
                .into_iter()
                .find(|c| c.is_file());
            Ok(KernelImage {
                series: "custom".into(),
                arch,
                image: path.clone(),
                config,
                origin: path.display().to_string(),
            })
        }
        KernelSpec::Series(name) => {
            if let Some((base, flavour)) = kernel_build::Flavour::split(name) {
                return kernel_build::obtain(
                    config,
                    catalog,
                    base,
                    flavour,
                    arch,
                    crate::config::cpus(),
                );
            }
            let series = catalog.find(name).with_context(|| {
                format!(
                    "unknown kernel series `{name}`; known: {} (see `bpflab kernels`), or give a path \
                     to a kernel image",
                    catalog.series_names().join(", ")
                )
            })?;
            if series.debian_pattern(arch).is_none() && series.source.is_some() {
                // No prebuilt kernel: the next source in order of preference is a build.
                crate::ui::status(format!(
                    "kernel {name} has no prebuilt package for {arch}: building a minimal one from source \
                     (once; later runs use the cache)"
                ));
                return kernel_build::obtain(
                    config,
                    catalog,
                    name,
                    kernel_build::Flavour::Minimal,
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
    let pattern = series.debian_pattern(arch).with_context(|| {
        format!(
            "kernel {} is not available for {arch}: the catalog has no package for it",
            series.series
        )
    })?;
    let query = archive::Query {
        what: format!("kernel {}", series.series),
        suites: &series.suites,
        pattern,
        arch,
    };
    let dir = cache_dir(config, &series.series, arch);
    let lock = crate::lock::KernelLock::load(&lock_path())?;
    let pinned = lock.find(&series.series, arch);
    let record = archive::obtain(config, &query, &dir, refresh, pinned, |path| {
        let file = path.rsplit('/').next().unwrap_or(path);
        let in_boot = path.starts_with("boot/");
        // Until 6.x the image is boot/vmlinuz-<release>; the split packages of 7.x put
        // it in usr/lib/modules/<release>/vmlinuz.
        if (in_boot && file.starts_with("vmlinuz-"))
            || (path.starts_with("usr/lib/modules/") && file == "vmlinuz")
        {
            Some("vmlinuz".into())
        } else if in_boot && file.starts_with("config-") {
            Some("config".into())
        } else {
            None
        }
    })?;
    if !record.files.contains_key("vmlinuz") {
        bail!(
            "{} {} contains no kernel image (looked for boot/vmlinuz-* and usr/lib/modules/*/vmlinuz)",
            record.package.name,
            record.package.version
        );
    }
    Ok(KernelImage {
        series: series.series.clone(),
        arch,
        image: dir.join("vmlinuz"),
        config: record
            .files
            .contains_key("config")
            .then(|| dir.join("config")),
        origin: format!(
            "{} {} (Debian {})",
            record.package.name, record.package.version, record.suite
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_org_hashes_are_read_from_the_signed_listing() {
        let sums = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n\
            1111111111111111111111111111111111111111111111111111111111111111  linux-4.4.301.tar.xz\n\
            ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789  linux-4.4.302.tar.xz\n\
            2222222222222222222222222222222222222222222222222222222222222222  linux-4.4.302.tar.gz\n\
            -----BEGIN PGP SIGNATURE-----\n";
        assert_eq!(
            sha256_from_sums(sums, "linux-4.4.302.tar.xz").as_deref(),
            Some("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
        );
        assert_eq!(sha256_from_sums(sums, "linux-4.4.303.tar.xz"), None);
    }

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
}
