//! The source tree a build unpacks: a pinned `linux-source-*` package, or a kernel.org
//! tarball with a pinned SHA-256. Nothing unpinned is ever built: building runs its scripts.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::archive;
use crate::kernel::catalog::KernelSeries;
use crate::{digest, fetch, term};

/// A source package's tarball by its suffix, and the name it is kept under in the cache
/// (the unpacker picks the decompressor by that name).
const SOURCE_TARBALLS: [(&str, &str); 2] =
    [(".tar.xz", "linux.tar.xz"), (".tar.bz2", "linux.tar.bz2")];

/// The source tarball a source package's cache entry recorded, and its SHA-256.
pub(super) fn recorded_tarball(record: &archive::Record) -> Option<(&'static str, &str)> {
    SOURCE_TARBALLS
        .iter()
        .find_map(|(_, name)| record.files.get(*name).map(|sha| (*name, sha.as_str())))
}

/// The source tarball of a series and its hash: from Debian's `linux-source-*`, or
/// kernel.org. When neither answers, the series cannot be built here: [`Unavailable`],
/// no failure of bpflab.
///
/// [`Unavailable`]: crate::kernel::Unavailable
pub(super) fn source_tarball(
    config: &Config,
    series: &KernelSeries,
    arch: Arch,
) -> anyhow::Result<(PathBuf, String)> {
    let spec = series
        .source
        .as_ref()
        .with_context(|| format!("the catalog names no source for kernel {}", series.series))?;
    let dir = config.cache_dir.join("sources").join(&series.series);
    let mut problems = Vec::new();
    // Building a kernel runs its Makefiles: only a source pinned in the lock is used.
    let lock = crate::kernel::pins::KernelLock::load(&crate::kernel::pins::lock_path())?;
    if let Some(pattern) = &spec.package {
        let query = archive::Query {
            what: format!("linux source {}", series.series),
            distribution: series.distribution(),
            suites: &series.suites,
            pattern: regex_lite::Regex::new(pattern).context("source package pattern")?,
            arch,
        };
        let Some(pinned) = lock.find_source_package(&series.series) else {
            bail!(
                "the source package of kernel {} is not pinned in {}: run `bpflab kernels \
                 update {}` to pin the newest (building runs the source's own scripts, so \
                 bpflab builds only a source whose hash is pinned)",
                series.series,
                crate::kernel::pins::lock_path().display(),
                series.series
            );
        };
        // Debian's packages hold usr/src/linux-source-<v>.tar.xz, Ubuntu's
        // usr/src/linux-source-<v>/linux-source-<v>.tar.bz2.
        let picked = archive::obtain(config, &query, &dir, false, Some(pinned), |path| {
            let (_, name) = SOURCE_TARBALLS
                .iter()
                .find(|(suffix, _)| path.ends_with(suffix))?;
            path.starts_with("usr/src/linux-source-")
                .then(|| name.to_string())
        });
        match picked {
            Ok(record) => match recorded_tarball(&record) {
                Some((name, sha)) => return Ok((dir.join(name), sha.to_string())),
                None => problems.push(format!(
                    "{} has no usr/src/linux-source-*.tar.xz or .tar.bz2",
                    record.package.name
                )),
            },
            Err(e) if fetch::no_other_source_helps(&e) => return Err(e),
            Err(e) => problems.push(format!("{}: {e:#}", series.distribution())),
        }
    }
    if let Some(url) = &spec.kernel_org {
        let pinned = kernel_org_pin(series)?.map(|(_, sha)| sha);
        if let Some(found) = kernel_org_tarball(series, url, pinned, &dir, &mut problems)? {
            return Ok(found);
        }
    }
    Err(crate::kernel::Unavailable(format!(
        "no source for kernel {} can be obtained on this machine:\n  {}",
        series.series,
        problems.join("\n  ")
    ))
    .into())
}

/// The kernel.org tarball of a series and its pinned SHA-256 (the catalog's, or the one
/// `bpflab kernels update` pinned from kernel.org's signed listing), if it has both.
pub(super) fn kernel_org_pin(series: &KernelSeries) -> anyhow::Result<Option<(String, String)>> {
    let Some(url) = series.source.as_ref().and_then(|s| s.kernel_org.clone()) else {
        return Ok(None);
    };
    let from_catalog = series.source.as_ref().and_then(|s| s.sha256.clone());
    let pinned = match from_catalog {
        Some(sha) => Some(sha),
        None => {
            let lock = crate::kernel::pins::KernelLock::load(&crate::kernel::pins::lock_path())?;
            lock.source_sha256(&series.series, &url).map(str::to_string)
        }
    };
    Ok(pinned.map(|sha| (url, sha)))
}

/// Checked before anything else (the build tools included): a series whose only source is
/// a kernel.org tarball without a pinned hash cannot be built here, whatever the host has.
pub(super) fn ensure_buildable(series: &KernelSeries) -> anyhow::Result<()> {
    let Some(spec) = &series.source else {
        return Ok(());
    };
    let Some(url) = spec
        .kernel_org
        .as_deref()
        .filter(|_| spec.package.is_none())
    else {
        return Ok(());
    };
    match kernel_org_pin(series)? {
        Some(_) => Ok(()),
        None => Err(unpinned(url).into()),
    }
}

fn unpinned(url: &str) -> crate::kernel::Unavailable {
    crate::kernel::Unavailable(format!(
        "{url} has no pinned SHA-256: run `bpflab kernels update` where kernel.org is \
         reachable (it pins the hash from kernel.org's signed sha256sums.asc), or give \
         `source.sha256` in images/catalog.toml; nothing was downloaded or built"
    ))
}

/// The kernel.org tarball at `url`, checked against `pinned` (the catalog's hash, or the
/// one `bpflab kernels update` pinned from kernel.org's signed listing): cached or
/// downloaded. Without a pin neither a download nor a cached file is used. `None` (with
/// the reason in `problems`) when kernel.org does not answer.
fn kernel_org_tarball(
    series: &KernelSeries,
    url: &str,
    pinned: Option<String>,
    dir: &std::path::Path,
    problems: &mut Vec<String>,
) -> anyhow::Result<Option<(PathBuf, String)>> {
    let dest = dir.join("linux.tar.xz");
    // Unpinned only where kernel.org never answered `kernels update`: unavailable.
    let Some(pinned) = pinned else {
        return Err(unpinned(url).into());
    };
    if dest.is_file() {
        let sha = digest::sha256_file(&dest)?;
        if sha == pinned {
            return Ok(Some((dest, sha)));
        }
        term::status(format!(
            "the cached source of {} does not match its pinned SHA-256; fetching it again",
            series.series
        ));
        std::fs::remove_file(&dest).ok();
    }
    let result = fetch::download(
        &fetch::agent(),
        url,
        &dest,
        None,
        &format!("linux {}", series.series),
    );
    if let Err(e) = result {
        if fetch::no_other_source_helps(&e) {
            return Err(e);
        }
        problems.push(format!("kernel.org: {e:#}"));
    } else {
        let sha = digest::sha256_file(&dest)?;
        if sha != pinned {
            std::fs::remove_file(&dest).ok();
            bail!("{url}: SHA-256 {sha} does not match the pinned {pinned}; nothing was kept");
        }
        return Ok(Some((dest, sha)));
    }
    Ok(None)
}
