//! Packages from an apt archive (Debian's or Ubuntu's), kept in bpflab's cache: the
//! pinned package, or the newest matching a name pattern across some suites, downloaded,
//! verified against the archive's SHA-256, unpacked, and recorded. Used for kernels, their
//! configs and sources, and for the guest's tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::resolve::resolve;
pub use super::resolve::{newest, suite_index, Query};
use crate::config::Config;
use crate::digest;
use crate::kernel::apt::{deb, index, mirror::Mirrors};
pub use crate::kernel::pins::Pinned;
use crate::{fetch, term};

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
    /// Unpacked file name → its fingerprint when its hash was checked: while it is
    /// unchanged, a run need not hash the file again (a kernel is tens of megabytes).
    #[serde(default)]
    pub checked: BTreeMap<String, digest::Fingerprint>,
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
    let mut checked = BTreeMap::new();
    for (_, out) in &unpacked {
        let file = out
            .file_name()
            .context("unpacked files have names")?
            .to_string_lossy()
            .into_owned();
        files.insert(file.clone(), digest::sha256_file(out)?);
        // Renaming the staging directory into place keeps the files' fingerprints.
        if let Some(fingerprint) = digest::Fingerprint::of(out) {
            checked.insert(file, fingerprint);
        }
    }
    let record = Record {
        package,
        suite,
        files,
        checked,
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
    let mirrors = Mirrors::discover(config, query.distribution)?;
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
                     no other package was tried (the mirror is from {}; choose another with {})",
                    package.name,
                    package.version,
                    mirrors.origin,
                    mirrors.distribution.mirror_env()
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

/// The record of `dir` if every file it lists is there with its recorded hash. A file
/// whose fingerprint is as recorded is not hashed again; one that had to be hashed, and
/// matched, gets its fingerprint recorded (the caller holds the entry's lock).
fn intact(dir: &Path) -> Option<Record> {
    let mut record = record(dir)?;
    let mut rechecked = false;
    for (file, sha) in &record.files {
        let path = dir.join(file);
        let now = digest::Fingerprint::of(&path);
        if now.is_some() && record.checked.get(file) == now.as_ref() {
            continue;
        }
        if digest::sha256_file(&path).ok().as_deref() != Some(sha.as_str()) {
            term::status(format!(
                "the cache entry {} is damaged (a file's hash no longer matches); fetching it again",
                dir.display()
            ));
            return None;
        }
        if let Some(now) = now {
            record.checked.insert(file.clone(), now);
            rechecked = true;
        }
    }
    if rechecked {
        // Best effort: without it, the next run hashes the files again.
        let _ = write_record(dir, &record);
    }
    Some(record)
}

/// Writes `record.json` whole, by a rename: a reader sees the old record or the new one.
fn write_record(dir: &Path, record: &Record) -> anyhow::Result<()> {
    let partial = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(partial.path(), serde_json::to_vec_pretty(record)?)?;
    partial.persist(dir.join("record.json"))?;
    Ok(())
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
            checked: BTreeMap::from([(
                "vmlinuz".to_string(),
                digest::Fingerprint::of(&dir.path().join("vmlinuz")).unwrap(),
            )]),
        };
        std::fs::write(
            dir.path().join("record.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        assert!(intact(dir.path()).is_some());
        // A bit flipped on disk: the file's fingerprint changed (its change time, at
        // least), so it is hashed, and the hash no longer matches: the entry is refetched.
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
