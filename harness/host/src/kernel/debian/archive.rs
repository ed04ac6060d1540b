//! Packages from Debian's archive, kept in bpflab's cache: the newest package matching a
//! name pattern across some suites, downloaded, verified against the archive's SHA-256,
//! unpacked, and recorded. Used for kernels and for the guest's tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::config::Config;
use crate::digest;
use crate::kernel::debian::{deb, index, mirror::Mirrors};
pub use crate::kernel::pins::Pinned;
use crate::{fetch, term};

/// Which package to take.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// What it is, for messages (`kernel 6.1`, `busybox`).
    pub what: String,
    /// Suites to look in; the newest match across all of them wins.
    pub suites: &'a [String],
    /// Package name pattern.
    pub pattern: regex::Regex,
    /// Architecture.
    pub arch: Arch,
}

/// What the cache records about an unpacked package. Written last: a directory without
/// it is incomplete and ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The package.
    pub package: index::Package,
    /// The suite it came from.
    pub suite: String,
    /// Unpacked file name → its SHA-256, to detect a damaged cache entry.
    pub files: BTreeMap<String, String>,
}

/// Reads the record of a cache directory, if it holds a complete entry.
pub fn record(dir: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(dir.join("record.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Makes `dir` hold a package matching `query`, unpacked with `pick` (path in the package
/// → file name in `dir`, for the files wanted): the `pinned` one if given, else the
/// newest. An intact cached entry of the right package is used as it is, without asking
/// the network, unless `refresh`.
pub fn obtain(
    config: &Config,
    query: &Query<'_>,
    dir: &Path,
    refresh: bool,
    pinned: Option<&Pinned>,
    pick: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Record> {
    let parent = dir.parent().context("cache directory has no parent")?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _lock = crate::file_lock::acquire(parent, &name, &format!("fetching {}", query.what))?;

    if !refresh {
        if let Some(record) = intact(dir) {
            if pinned.is_none_or(|p| p.package == record.package) {
                return Ok(record);
            }
        }
    }

    // Download and unpack next to the final place, then swap it in.
    let staging = tempfile::Builder::new()
        .prefix(&crate::file_lock::scratch_prefix(&name))
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    let deb_path = staging.path().join("package.deb");
    let (package, suite) = download(config, query, pinned.filter(|_| !refresh), &deb_path)?;
    let unpacked = deb::extract(&deb_path, staging.path(), pick)?;
    std::fs::remove_file(&deb_path).ok();
    let mut files = BTreeMap::new();
    for (_, out) in &unpacked {
        let file = out
            .file_name()
            .context("unpacked files have names")?
            .to_string_lossy()
            .into_owned();
        files.insert(file, digest::sha256_file(out)?);
    }
    let record = Record {
        package,
        suite,
        files,
    };
    std::fs::write(
        staging.path().join("record.json"),
        serde_json::to_vec_pretty(&record)?,
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the old {}", dir.display()))?;
    }
    let staged: PathBuf = staging.keep();
    std::fs::rename(&staged, dir)
        .with_context(|| format!("moving {} into {}", query.what, dir.display()))?;
    term::status(format!(
        "downloaded {} for {} ({} {}) into {}",
        query.what,
        query.arch,
        record.package.name,
        record.package.version,
        dir.display()
    ));
    Ok(record)
}

/// Downloads the `pinned` package to `deb_path`, or else the newest that `query` finds.
/// A pin is exactly this file with this hash: if the mirror cannot serve it, or serves
/// something else, nothing else is used in its place.
fn download(
    config: &Config,
    query: &Query<'_>,
    pinned: Option<&Pinned>,
    deb_path: &Path,
) -> anyhow::Result<(index::Package, String)> {
    let mirrors = Mirrors::discover(config)?;
    let http = fetch::agent();
    let mut failures = Vec::new();
    let candidates = match pinned {
        Some(p) => vec![(p.package.clone(), p.suite.clone())],
        None => resolve(&http, &mirrors, query, config)?,
    };
    if let Some(chosen) =
        download_first(&http, &mirrors, query, candidates, deb_path, &mut failures)?
    {
        return Ok(chosen);
    }
    match pinned {
        Some(p) => bail!(
            "the pinned {} {} ({}) cannot be used: {}\nNothing else was used in its \
             place. If the mirror no longer has it, `bpflab kernels update` pins the \
             newest (or `--refresh-kernel` uses the newest for one run).",
            p.package.name,
            p.package.version,
            crate::kernel::pins::lock_path().display(),
            failures.join("; ")
        ),
        None => bail!(
            "no package of {} for {} could be downloaded:\n  {}",
            query.what,
            query.arch,
            failures.join("\n  ")
        ),
    }
}

/// Downloads the first candidate that the mirror serves intact, newest first. Mirrors are
/// sometimes behind their own index (a package listed but not yet, or no longer, in the
/// pool): each failure is said, and the next candidate tried.
fn download_first(
    http: &ureq::Agent,
    mirrors: &Mirrors,
    query: &Query<'_>,
    candidates: Vec<(index::Package, String)>,
    deb_path: &Path,
    failures: &mut Vec<String>,
) -> anyhow::Result<Option<(index::Package, String)>> {
    for (package, suite) in candidates {
        let Some(base) = mirrors.for_suite(&suite) else {
            failures.push(format!("{}: no mirror for suite {suite}", package.name));
            continue;
        };
        let url = format!("{base}/{}", package.filename);
        let expected = fetch::Expected {
            sha256: package.sha256.clone(),
            size: package.size,
        };
        let label = format!("{} ({})", query.what, package.version);
        match fetch::download(http, &url, deb_path, Some(&expected), &label) {
            Ok(()) => return Ok(Some((package, suite))),
            // Ctrl-C, or this machine's disk: another package would fail the same way.
            Err(e) if fetch::no_other_source_helps(&e) => return Err(e),
            // Only a file the mirror says it does not have is a reason to try an older
            // one; bytes that fail their signed hash mean someone is tampering, and
            // whatever they would serve next is not to be trusted either.
            Err(e) if !fetch::is_not_found(&e) => {
                return Err(e.context(format!(
                    "{} {} failed its check against the signed index; nothing was used and \
                     no other package was tried",
                    package.name, package.version
                )))
            }
            Err(e) => {
                term::status(format!(
                    "{} {} unusable, trying the next: {e:#}",
                    package.name, package.version
                ));
                failures.push(format!("{} {}: {e:#}", package.name, package.version));
            }
        }
    }
    Ok(None)
}

/// The newest package matching `query` that the mirror really serves (for `bpflab
/// kernels update`: a pin must be downloadable).
pub fn newest(config: &Config, query: &Query<'_>) -> anyhow::Result<Pinned> {
    let mirrors = Mirrors::discover(config)?;
    let http = fetch::agent();
    let candidates = resolve(&http, &mirrors, query, config)?;
    let mut missing = Vec::new();
    for (package, suite) in candidates {
        let Some(base) = mirrors.for_suite(&suite) else {
            continue;
        };
        let url = format!("{base}/{}", package.filename);
        match http.head(&url).call() {
            Ok(_) => return Ok(Pinned { package, suite }),
            Err(e) => missing.push(format!("{} {}: {e}", package.name, package.version)),
        }
    }
    bail!(
        "the mirror serves none of the packages its index lists for {}:\n  {}",
        query.what,
        missing.join("\n  ")
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The record of `dir` if every file it lists is there with its recorded hash.
fn intact(dir: &Path) -> Option<Record> {
    let record = record(dir)?;
    let damaged = record.files.iter().any(|(file, sha)| {
        digest::sha256_file(&dir.join(file)).ok().as_deref() != Some(sha.as_str())
    });
    if damaged {
        term::status(format!(
            "the cache entry {} is damaged (a file's hash no longer matches); fetching it again",
            dir.display()
        ));
        return None;
    }
    Some(record)
}

/// The packages matching the query across its suites, newest first.
fn resolve(
    http: &ureq::Agent,
    mirrors: &Mirrors,
    query: &Query<'_>,
    config: &Config,
) -> anyhow::Result<Vec<(index::Package, String)>> {
    let deb_arch = query.arch.debian_arch();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for suite in query.suites {
        let Some(base) = mirrors.for_suite(suite) else {
            problems.push(format!("{suite}: no security mirror configured"));
            continue;
        };
        let spinner = term::spinner(format!("reading the package index of {suite} ({deb_arch})"));
        match suite_packages(http, base, suite, deb_arch, &query.pattern, config) {
            Ok(pkgs) => found.extend(pkgs.into_iter().map(|p| (p, suite.clone()))),
            Err(e) if fetch::no_other_source_helps(&e) => return Err(e),
            Err(e) => problems.push(format!("{suite}: {e:#}")),
        }
        spinner.finish_and_clear();
    }
    if found.is_empty() {
        bail!(
            "no package for {} on {} in Debian suites {} (mirror from {}; choose another with {}){}",
            query.what,
            query.arch,
            query.suites.join(", "),
            mirrors.origin,
            crate::kernel::debian::mirror::MIRROR_ENV,
            if problems.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", problems.join("\n  "))
            }
        );
    }
    // Newest first; the same file listed by two suites is tried once.
    let mut ordered = Vec::new();
    while let Some(pkg) = index::newest(found.iter().map(|(p, _)| p.clone())) {
        let pos = found
            .iter()
            .position(|(p, _)| *p == pkg)
            .expect("came from found");
        let (pkg, suite) = found.swap_remove(pos);
        found.retain(|(p, _)| p.filename != pkg.filename);
        ordered.push((pkg, suite));
    }
    Ok(ordered)
}

/// The packages of one suite whose names match, from its verified `Packages.xz`.
fn suite_packages(
    http: &ureq::Agent,
    base: &str,
    suite: &str,
    deb_arch: &str,
    pattern: &regex::Regex,
    config: &Config,
) -> anyhow::Result<Vec<index::Package>> {
    let release = fetch::fetch_text(http, &format!("{base}/dists/{suite}/InRelease"))?;
    // Only what the signature covers is read from here on.
    let signed = crate::kernel::debian::signature::verify_inrelease(
        &release,
        &format!("{suite}'s InRelease"),
    )?;
    let release = index::Release::parse(&signed)?;
    release.check(suite, now_secs(), index::allow_expired())?;
    let hashes = release.sha256;
    let rel_path = format!("main/binary-{deb_arch}/Packages.xz");
    let entry = hashes
        .get(&rel_path)
        .with_context(|| format!("InRelease of {suite} lists no {rel_path}"))?;
    // Indexes are cached by content hash: an unchanged suite costs only its InRelease.
    let cached = config
        .cache_dir
        .join("debian-indexes")
        .join(format!("{}.xz", entry.sha256));
    if !cached.is_file() {
        fetch::download(
            http,
            &format!("{base}/dists/{suite}/{rel_path}"),
            &cached,
            Some(&fetch::Expected {
                sha256: entry.sha256.clone(),
                size: entry.size,
            }),
            &format!("index {suite}/{deb_arch}"),
        )?;
    }
    // Capped: an index that decompresses to GiBs is refused, not read into memory.
    let text = fetch::limits::xz_text(&cached, fetch::limits::MAX_PACKAGES_INDEX)?;
    Ok(index::parse_packages(&text, |name| pattern.is_match(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_entry_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz"), b"kernel").unwrap();
        let record = Record {
            package: index::Package {
                name: "linux-image-test".into(),
                version: "1".into(),
                filename: "pool/t.deb".into(),
                size: 1,
                sha256: "00".into(),
            },
            suite: "stable".into(),
            files: BTreeMap::from([("vmlinuz".to_string(), digest::sha256_bytes(b"kernel"))]),
        };
        std::fs::write(
            dir.path().join("record.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        assert!(intact(dir.path()).is_some());
        // A bit flipped on disk: the recorded hash no longer matches, the entry is refetched.
        std::fs::write(dir.path().join("vmlinuz"), b"kernal").unwrap();
        assert!(intact(dir.path()).is_none());
        // A missing file, or no record (an interrupted fetch), is not an entry either.
        std::fs::remove_file(dir.path().join("vmlinuz")).unwrap();
        assert!(intact(dir.path()).is_none());
        std::fs::remove_file(dir.path().join("record.json")).unwrap();
        assert!(record_of(dir.path()).is_none());
    }

    fn record_of(dir: &Path) -> Option<Record> {
        record(dir)
    }
}
