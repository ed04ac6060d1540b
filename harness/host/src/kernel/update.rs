//! `bpflab kernels update`: pins the newest of everything bpflab downloads — kernel
//! packages, kernel source packages, the guest's tools, kernel.org tarballs — in
//! `images/kernels.lock`. One thing that cannot be reached or is refused keeps its old pin
//! and is reported; the rest update.

use crate::arch::Arch;
use crate::config::Config;
use crate::image::guest_tools;
use crate::kernel::apt::archive::{self, Pinned, Query};
use crate::kernel::catalog::{Catalog, KernelSeries};
use crate::kernel::pins::{self, KernelLock};
use crate::openpgp::{Keyring, PinnedKey};

use anyhow::Context as _;

/// The key that signs kernel.org's `sha256sums.asc` listings ("Kernel.org checksum
/// autosigner"), shipped in `images/keys/kernel.org/` and pinned by fingerprint.
pub const KERNEL_ORG_KEYS: &[PinnedKey] = &[PinnedKey {
    name: "Kernel.org checksum autosigner",
    signers: &["B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1"],
    // The key carries no expiry.
    expires: u64::MAX,
    armored: include_str!("../../../../images/keys/kernel.org/autosigner.asc"),
}];

/// Pins the newest of everything for `arches`, or only what belongs to the series named in
/// `only` (nothing else moves). Returns what changed (and what could not be updated), as
/// lines for the user.
pub fn update_lock(
    catalog: &Catalog,
    config: &Config,
    only: &[String],
    arches: &[Arch],
) -> anyhow::Result<Vec<String>> {
    let path = pins::lock_path();
    let mut lock = KernelLock::load(&path)?;
    let mut changes = Vec::new();
    let mut chosen = catalog.clone();
    if !only.is_empty() {
        chosen.kernels.retain(|k| only.contains(&k.series));
    }
    pin_kernels(&chosen, config, arches, &mut lock, &mut changes)?;
    pin_source_packages(&chosen, config, &mut lock, &mut changes)?;
    if only.is_empty() {
        pin_tools(&chosen, config, arches, &mut lock, &mut changes)?;
    }
    pin_kernel_org(&chosen, &mut lock, &mut changes);
    lock.save(&path)?;
    Ok(changes)
}

/// The newest package for `query`, or `None` after saying in `changes` why there is none
/// (a Ctrl-C or this machine's disk stops the whole update).
fn newest(
    config: &Config,
    query: &Query<'_>,
    label: &str,
    changes: &mut Vec<String>,
) -> anyhow::Result<Option<Pinned>> {
    match archive::newest(config, query) {
        Ok(newest) => Ok(Some(newest)),
        Err(e) if crate::fetch::no_other_source_helps(&e) => Err(e),
        Err(e) => {
            changes.push(format!("{label}: not updated: {e:#}"));
            Ok(None)
        }
    }
}

/// Says in `changes` when a pin moves from `before` to `after`.
fn note_change(label: &str, before: Option<&Pinned>, after: &Pinned, changes: &mut Vec<String>) {
    let before = before.map(|p| p.package.version.clone());
    if before.as_deref() != Some(after.package.version.as_str()) {
        changes.push(format!(
            "{label}: {} → {} {}",
            before.unwrap_or_else(|| "(none)".into()),
            after.package.name,
            after.package.version
        ));
    }
}

fn pin_kernels(
    catalog: &Catalog,
    config: &Config,
    arches: &[Arch],
    lock: &mut KernelLock,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    for series in &catalog.kernels {
        for &arch in arches {
            let Some(pattern) = series.package_pattern(arch) else {
                continue;
            };
            let query = Query {
                what: format!("kernel {}", series.series),
                distribution: series.distribution(),
                suites: &series.suites,
                pattern,
                arch,
            };
            let label = format!("{} {arch}", series.series);
            if let Some(newest) = newest(config, &query, &label, changes)? {
                note_change(&label, lock.find(&series.series, arch), &newest, changes);
                pin_companions(config, &query, series, &newest, lock, changes)?;
                lock.set(&series.series, arch, newest);
            }
        }
    }
    Ok(())
}

/// A package pinned beside a kernel, of its very version, when the kernel's own package
/// does not hold what it holds.
#[derive(Debug, Clone, Copy)]
enum Companion {
    /// The build config (Ubuntu's `linux-modules-*`, Debian's `linux-base-*` from 7.x).
    Config,
    /// The modules (Ubuntu's `linux-modules-*`, Debian's from 7.x).
    Modules,
}

impl Companion {
    fn name(self, series: &KernelSeries, arch: Arch, kernel: &str) -> Option<String> {
        match self {
            Companion::Config => series.config_package(arch, kernel),
            Companion::Modules => series.modules_package(arch, kernel),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Companion::Config => "config",
            Companion::Modules => "modules",
        }
    }

    fn find(self, lock: &KernelLock, series: &str, arch: Arch) -> Option<Pinned> {
        match self {
            Companion::Config => lock.find_config(series, arch).cloned(),
            Companion::Modules => lock.find_modules(series, arch).cloned(),
        }
    }

    fn set(self, lock: &mut KernelLock, series: &str, arch: Arch, pinned: Pinned) {
        match self {
            Companion::Config => lock.set_config(series, arch, pinned),
            Companion::Modules => lock.set_modules(series, arch, pinned),
        }
    }
}

/// The packages pinned beside the newly pinned `kernel` (its config, its modules), where
/// they are others: those names, of the kernel's very version.
fn pin_companions(
    config: &Config,
    kernel_query: &Query<'_>,
    series: &KernelSeries,
    kernel: &Pinned,
    lock: &mut KernelLock,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let arch = kernel_query.arch;
    for companion in [Companion::Config, Companion::Modules] {
        let Some(name) = companion.name(series, arch, &kernel.package.name) else {
            continue;
        };
        let query = Query {
            what: format!("the {} of kernel {}", companion.word(), series.series),
            pattern: regex_lite::Regex::new(&format!("^{}$", regex_lite::escape(&name)))?,
            ..kernel_query.clone()
        };
        let label = format!("{} {arch} {}", series.series, companion.word());
        let Some(newest) = newest(config, &query, &label, changes)? else {
            continue;
        };
        if newest.package.version != kernel.package.version {
            changes.push(format!(
                "{label}: not updated: the mirror has {name} {}, not the kernel's {}",
                newest.package.version, kernel.package.version
            ));
            continue;
        }
        let before = companion.find(lock, &series.series, arch);
        note_change(&label, before.as_ref(), &newest, changes);
        companion.set(lock, &series.series, arch, newest);
    }
    Ok(())
}

/// `linux-source-*` is arch-independent: any arch's index lists it.
fn pin_source_packages(
    catalog: &Catalog,
    config: &Config,
    lock: &mut KernelLock,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    for series in &catalog.kernels {
        let Some(pattern) = series.source.as_ref().and_then(|s| s.package.as_deref()) else {
            continue;
        };
        let query = Query {
            what: format!("linux source {}", series.series),
            distribution: series.distribution(),
            suites: &series.suites,
            pattern: regex_lite::Regex::new(pattern).context("source package pattern")?,
            arch: Arch::X86_64,
        };
        let label = format!("{} source", series.series);
        if let Some(newest) = newest(config, &query, &label, changes)? {
            note_change(
                &label,
                lock.find_source_package(&series.series),
                &newest,
                changes,
            );
            lock.set_source_package(&series.series, newest);
        }
    }
    Ok(())
}

fn pin_tools(
    catalog: &Catalog,
    config: &Config,
    arches: &[Arch],
    lock: &mut KernelLock,
    changes: &mut Vec<String>,
) -> anyhow::Result<()> {
    for &arch in arches {
        let query = guest_tools::busybox_query(catalog, arch)?;
        let label = format!("busybox {arch}");
        if let Some(newest) = newest(config, &query, &label, changes)? {
            note_change(&label, lock.find_tool("busybox", arch), &newest, changes);
            lock.set_tool("busybox", arch, newest);
        }
    }
    Ok(())
}

/// kernel.org tarballs: the hash kernel.org publishes beside each, in a signed listing.
fn pin_kernel_org(catalog: &Catalog, lock: &mut KernelLock, changes: &mut Vec<String>) {
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
}

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
    let ring = Keyring::load(KERNEL_ORG_KEYS)?;
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
        let debian = include_str!("apt/testdata/bullseye.InRelease");
        let err = verify_sums(debian, now).unwrap_err();
        assert!(err.to_string().contains("none of its"), "{err}");
        // The shipped key is the one pinned.
        crate::openpgp::Keyring::load(KERNEL_ORG_KEYS).unwrap();
    }
}
