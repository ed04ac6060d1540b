//! Getting a kernel image to boot: a path the user gives, or a catalog series resolved to
//! a Debian package, downloaded, verified, unpacked and cached.

pub mod build;
pub mod catalog;
pub mod check;
pub mod debian;
pub mod pins;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::arch::Arch;
use crate::config::Config;
use catalog::{Catalog, KernelSeries};
use debian::archive;

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
    let mut lock = crate::kernel::pins::KernelLock::load(&path)?;
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
            let newest = match archive::newest(config, &query) {
                Ok(newest) => newest,
                // One unreachable or refused suite leaves its pin as it is; the rest update.
                Err(e) if crate::fetch::no_other_source_helps(&e) => return Err(e),
                Err(e) => {
                    changes.push(format!("{} {arch}: not updated: {e:#}", series.series));
                    continue;
                }
            };
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
    // Source packages: `linux-source-*` is arch-independent; any arch's index lists it.
    for series in &catalog.kernels {
        let Some(pattern) = series.source.as_ref().and_then(|s| s.debian.as_deref()) else {
            continue;
        };
        let query = archive::Query {
            what: format!("linux source {}", series.series),
            suites: &series.suites,
            pattern: regex::Regex::new(pattern).context("source package pattern")?,
            arch: Arch::X86_64,
        };
        match archive::newest(config, &query) {
            Ok(newest) => {
                let before = lock
                    .find_source_package(&series.series)
                    .map(|p| p.package.version.clone());
                if before.as_deref() != Some(newest.package.version.as_str()) {
                    changes.push(format!(
                        "{} source: {} → {} {}",
                        series.series,
                        before.unwrap_or_else(|| "(none)".into()),
                        newest.package.name,
                        newest.package.version
                    ));
                }
                lock.set_source_package(&series.series, newest);
            }
            Err(e) if crate::fetch::no_other_source_helps(&e) => return Err(e),
            Err(e) => changes.push(format!("{} source: not updated: {e:#}", series.series)),
        }
    }
    // Programs for the guest.
    for &arch in arches {
        let query = crate::image::guest_tools::busybox_query(catalog, arch)?;
        match archive::newest(config, &query) {
            Ok(newest) => {
                let before = lock
                    .find_tool("busybox", arch)
                    .map(|p| p.package.version.clone());
                if before.as_deref() != Some(newest.package.version.as_str()) {
                    changes.push(format!(
                        "busybox {arch}: {} → {} {}",
                        before.unwrap_or_else(|| "(none)".into()),
                        newest.package.name,
                        newest.package.version
                    ));
                }
                lock.set_tool("busybox", arch, newest);
            }
            Err(e) if crate::fetch::no_other_source_helps(&e) => return Err(e),
            Err(e) => changes.push(format!("busybox {arch}: not updated: {e:#}")),
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

/// The key that signs kernel.org's `sha256sums.asc` listings ("Kernel.org checksum
/// autosigner"), shipped in `images/keys/kernel.org/` and pinned by fingerprint.
pub const KERNEL_ORG_KEYS: &[crate::openpgp::PinnedKey] = &[crate::openpgp::PinnedKey {
    name: "Kernel.org checksum autosigner",
    signers: &["B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1"],
    // The key carries no expiry.
    expires: u64::MAX,
    armored: include_str!("../../../../images/keys/kernel.org/autosigner.asc"),
}];

/// The SHA-256 kernel.org publishes for a tarball, from `sha256sums.asc` in its directory,
/// read only from the part its signature covers.
fn kernel_org_sha256(http: &ureq::Agent, url: &str) -> anyhow::Result<String> {
    let (dir, file) = url
        .rsplit_once('/')
        .with_context(|| format!("{url} names no file"))?;
    let sums = crate::fetch::fetch_text(http, &format!("{dir}/sha256sums.asc"))?;
    let signed = verify_sums(&sums, std::time::SystemTime::now())
        .with_context(|| format!("{dir}/sha256sums.asc"))?;
    sha256_from_sums(&signed, file).with_context(|| format!("{dir}/sha256sums.asc lists no {file}"))
}

/// Checks kernel.org's signature on a `sha256sums.asc` and returns the signed listing.
pub fn verify_sums(armored: &str, now: std::time::SystemTime) -> anyhow::Result<String> {
    let ring = crate::openpgp::Keyring::load(KERNEL_ORG_KEYS)?;
    let verified = ring
        .verify(armored, now)
        .map_err(|refusal| anyhow::anyhow!("refused: {refusal}"))?;
    Ok(verified.text)
}

/// Finds `file`'s hash in a `sha256sum`-style listing (`<hex>  <name>` per line).
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
            check_image_file(path)?;
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
            if series.debian_pattern(arch).is_none() && series.source.is_some() {
                // No prebuilt kernel: the next source in order of preference is a build.
                crate::term::status(format!(
                    "kernel {name} has no prebuilt package for {arch}: building a minimal one from source \
                     (once; later runs use the cache)"
                ));
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

/// A kernel image given by path is a regular file (or a link to one): QEMU cannot boot a
/// directory, and a device such as /dev/zero would be read forever.
fn check_image_file(path: &Path) -> anyhow::Result<()> {
    let what = "give the path of a kernel image file (bzImage, vmlinux, arm64 Image) or a \
                series (`bpflab kernels` lists them)";
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => bail!(
            "kernel image {} is not a regular file but a {}: {what}",
            path.display(),
            file_kind(meta.file_type())
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("kernel image {} does not exist: {what}", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("reading kernel image {}", path.display())),
    }
}

fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_dir() {
        "directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "device"
    } else if kind.is_fifo() {
        "named pipe"
    } else {
        "socket"
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
    let lock = crate::kernel::pins::KernelLock::load(&lock_path())?;
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
    fn an_unsigned_or_wrongly_signed_listing_pins_nothing() {
        let now = std::time::SystemTime::now();
        let unsigned = "1111111111111111111111111111111111111111111111111111111111111111  \
                        linux-4.4.302.tar.xz\n";
        assert!(verify_sums(unsigned, now).is_err());
        // Debian's signature is a real one, but not kernel.org's.
        let debian = include_str!("debian/testdata/bullseye.InRelease");
        let err = verify_sums(debian, now).unwrap_err();
        assert!(err.to_string().contains("none of its"), "{err}");
        // The shipped key is the one pinned.
        crate::openpgp::Keyring::load(KERNEL_ORG_KEYS).unwrap();
    }

    #[test]
    fn a_kernel_path_that_is_no_regular_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let message = |path: &Path| format!("{:#}", check_image_file(path).unwrap_err());
        assert!(message(Path::new("/dev/zero")).contains("is not a regular file but a device"));
        assert!(message(dir.path()).contains("is not a regular file but a directory"));
        let missing = message(&dir.path().join("bzImage"));
        assert!(missing.contains("does not exist"), "{missing}");
        let image = dir.path().join("vmlinuz");
        std::fs::write(&image, b"kernel").unwrap();
        check_image_file(&image).unwrap();
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
