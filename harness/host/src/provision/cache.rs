//! A need's packages unpacked in bpflab's cache: `provision/<release>-<arch>/<key>/`,
//! holding `root/` (the packages' files, as below `/`) and `complete.json`, written
//! last. A directory without it, or whose files no longer match what it lists, is
//! unpacked again: a damaged or interrupted unpack is never used.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::host::HostPackages;
use super::lock::{Locked, ToolsLock};
use super::spec::{self, Need};
use super::{closure, release};
use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::{mirror::Mirrors, tree, Distribution};
use crate::{digest, fetch, file_lock, term};

/// What `complete.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The hash of every pin the need's closure has (see [`pins_hash`]): a new lock means
    /// a new unpack.
    pub pins: String,
    /// The release the packages came from.
    pub release: String,
    /// The packages unpacked: (name, version).
    pub packages: Vec<(String, String)>,
    /// Bytes downloaded for them.
    pub downloaded: u64,
    /// Every file and link unpacked, relative to the root, with its size (0 for links).
    pub files: tree::Manifest,
}

/// A need's packages, unpacked and whole.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// Where its files are (as below `/`).
    pub root: PathBuf,
    /// What was unpacked.
    pub record: Record,
    /// Whether this run downloaded them (else they were in the cache).
    pub fresh: bool,
}

/// Where the need's packages go, and the pins they must match, for this host.
pub struct Place {
    /// The cache directory of the need.
    pub dir: PathBuf,
    /// The chosen release.
    pub release: String,
    /// [`pins_hash`] of the need's whole closure.
    pub pins: String,
    /// The whole closure, as pinned (what a host with nothing but glibc downloads).
    pub all: Vec<Locked>,
}

/// Where `need`'s packages are kept on this host, and what they must be.
/// A need for the guest comes from [`spec::GUEST_RELEASE`], for the guest's arch.
pub fn place(config: &Config, lock: &ToolsLock, need: Need, host: Arch) -> anyhow::Result<Place> {
    let chosen = if need.for_guest() {
        spec::GUEST_RELEASE.to_string()
    } else {
        release::choose(lock, host, release::host_glibc().as_deref())?
            .release
            .clone()
    };
    let arch = need.package_arch(host).debian_arch();
    let set = need.packages(host);
    let all: Vec<Locked> = closure::packages(lock, &chosen, arch, &set, None)?
        .into_iter()
        .cloned()
        .collect();
    Ok(Place {
        dir: config
            .cache_dir
            .join("provision")
            .join(format!("{chosen}-{arch}"))
            .join(&set.key),
        release: chosen,
        pins: pins_hash(&all),
        all,
    })
}

/// The hash of a list of pins: names, versions and SHA-256s.
pub fn pins_hash(pins: &[Locked]) -> String {
    let text: String = pins
        .iter()
        .map(|p| {
            format!(
                "{} {} {}\n",
                p.package.name, p.package.version, p.package.sha256
            )
        })
        .collect();
    digest::sha256_bytes(text.as_bytes())
}

/// The need's unpacked packages if the cache holds them whole, for these pins.
pub fn cached(place: &Place) -> Option<Unpacked> {
    let text = std::fs::read_to_string(place.dir.join("complete.json")).ok()?;
    let record: Record = serde_json::from_str(&text).ok()?;
    if record.pins != place.pins {
        return None;
    }
    let root = place.dir.join("root");
    let whole = record.files.iter().all(|(file, size)| {
        let path = root.join(file);
        match path.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => *size == 0,
            Ok(m) => m.is_file() && m.len() == *size,
            Err(_) => false,
        }
    });
    if !whole {
        term::status(format!(
            "the unpacked tools in {} are damaged (a file is missing or changed); unpacking \
             them again",
            place.dir.display()
        ));
        return None;
    }
    Some(Unpacked {
        root,
        record,
        fresh: false,
    })
}

/// The need's packages, from the cache or else downloaded (only what the host lacks),
/// verified against the lock and unpacked.
pub fn obtain(config: &Config, need: Need, host: Arch) -> anyhow::Result<Unpacked> {
    let lock = ToolsLock::load(&super::lock::lock_path())?;
    let place = place(config, &lock, need, host)?;
    if let Some(found) = cached(&place) {
        return Ok(found);
    }
    let parent = place
        .dir
        .parent()
        .context("the cache directory has a parent")?;
    let set = need.packages(host);
    let _lock = file_lock::acquire(parent, &set.key, &format!("unpacking {}", need.describe()))?;
    if let Some(found) = cached(&place) {
        return Ok(found);
    }
    // The guest has nothing of the host's: its whole closure is unpacked.
    let host_packages = (!set.guest).then(|| HostPackages::read(Path::new("/var/lib/dpkg")));
    let wanted = closure::packages(
        &lock,
        &place.release,
        need.package_arch(host).debian_arch(),
        &set,
        host_packages.as_ref(),
    )?;
    let staging = tempfile::Builder::new()
        .prefix(&file_lock::scratch_prefix(&set.key))
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    let record = unpack_all(config, &place, &wanted, staging.path())?;
    std::fs::write(
        staging.path().join("complete.json"),
        serde_json::to_vec(&record)?,
    )?;
    if place.dir.exists() {
        std::fs::remove_dir_all(&place.dir)
            .with_context(|| format!("removing the old {}", place.dir.display()))?;
    }
    std::fs::rename(staging.keep(), &place.dir)
        .with_context(|| format!("moving the unpacked tools into {}", place.dir.display()))?;
    term::status(format!(
        "provisioned {}: {} package(s) of Debian {}, {} downloaded, into {}",
        need.describe(),
        record.packages.len(),
        place.release,
        super::megabytes(record.downloaded),
        place.dir.display()
    ));
    Ok(Unpacked {
        root: place.dir.join("root"),
        record,
        fresh: true,
    })
}

/// Downloads each package (checked against its pin) and unpacks it below
/// `staging/root`.
fn unpack_all(
    config: &Config,
    place: &Place,
    wanted: &[&Locked],
    staging: &Path,
) -> anyhow::Result<Record> {
    let mirrors = Mirrors::discover(config, Distribution::Debian)?;
    let http = fetch::agent();
    let root = staging.join("root");
    std::fs::create_dir_all(&root)?;
    // A file two packages ship is the later one's.
    let mut files = std::collections::BTreeMap::new();
    let mut downloaded = 0;
    for pin in wanted {
        let package = &pin.package;
        let base = mirrors.for_suite(&pin.suite).with_context(|| {
            format!(
                "{} comes from {}, and no mirror of it is configured (set {})",
                package.name,
                pin.suite,
                Distribution::Debian
                    .security_mirror_env()
                    .unwrap_or("BPFLAB_DEBIAN_MIRROR")
            )
        })?;
        let deb = staging.join("package.deb");
        let expected = fetch::Expected {
            sha256: package.sha256.clone(),
            size: package.size,
        };
        let url = format!("{base}/{}", package.filename);
        let label = format!("{} {}", package.name, package.version);
        fetch::download(&http, &url, &deb, Some(&expected), &label).map_err(|e| {
            e.context(format!(
                "the pinned {} {} ({}) cannot be used; nothing else was used in its place. \
                 If the mirror no longer has it, `bpflab tools update` pins the newest",
                package.name,
                package.version,
                super::lock::lock_path().display()
            ))
        })?;
        downloaded += package.size;
        files.extend(tree::unpack(&deb, &root)?);
        std::fs::remove_file(&deb).ok();
    }
    Ok(Record {
        pins: place.pins.clone(),
        release: place.release.clone(),
        packages: wanted
            .iter()
            .map(|p| (p.package.name.clone(), p.package.version.clone()))
            .collect(),
        downloaded,
        files: files.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unpack whose record is missing (interrupted before it was written) or whose
    /// files no longer match it (damaged) is not used; nor one of other pins.
    #[test]
    fn a_partial_or_damaged_unpack_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"binary").unwrap();
        std::os::unix::fs::symlink("tool", root.join("usr/bin/alias")).unwrap();
        let place = Place {
            dir: dir.path().to_path_buf(),
            release: "bookworm".into(),
            pins: "p1".into(),
            all: vec![],
        };
        assert!(cached(&place).is_none(), "no record: an interrupted unpack");
        let record = Record {
            pins: "p1".into(),
            release: "bookworm".into(),
            packages: vec![("tool".into(), "1".into())],
            downloaded: 6,
            files: vec![("usr/bin/alias".into(), 0), ("usr/bin/tool".into(), 6)],
        };
        let write = |r: &Record| {
            std::fs::write(
                dir.path().join("complete.json"),
                serde_json::to_vec(r).unwrap(),
            )
            .unwrap()
        };
        write(&record);
        assert!(cached(&place).is_some_and(|u| !u.fresh));
        let other_pins = Place {
            pins: "p2".into(),
            ..place
        };
        assert!(
            cached(&other_pins).is_none(),
            "a new lock means a new unpack"
        );
        let place = Place {
            pins: "p1".into(),
            ..other_pins
        };
        std::fs::write(root.join("usr/bin/tool"), b"bin").unwrap();
        assert!(cached(&place).is_none(), "a file cut short");
        std::fs::write(root.join("usr/bin/tool"), b"binary").unwrap();
        std::fs::remove_file(root.join("usr/bin/alias")).unwrap();
        assert!(cached(&place).is_none(), "a link gone");
    }
}
