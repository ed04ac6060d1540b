//! The uncompressed `vmlinux` inside an x86-64 `bzImage`, for PVH boot: a
//! distribution's, or one the user gives by path.
//!
//! QEMU boots an x86-64 ELF `vmlinux` that carries a PVH entry note (`CONFIG_PVH=y`,
//! which Debian and Ubuntu set from 5.0) straight into the kernel at its 32-bit entry:
//! no real-mode setup code, no decompressor copying and unpacking tens of megabytes under
//! emulation. A `bzImage` holds exactly that ELF, compressed, as its payload
//! (`payload.rs`); this module takes it out, once, and keeps it beside a stamp. A
//! distribution's bzImage was checked against its archive's signed hash; a user's is
//! their own file. Either way, what comes out must be an ELF with the PVH note (`note.rs`)
//! or it is not used.

mod note;
mod payload;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::digest::{self, Fingerprint};

/// A bzImage bpflab knows how to unpack whose payload does not unpack: cut short or
/// damaged. For an image the user gives, that is their error to hear of, before a boot
/// that could only hang.
#[derive(Debug, thiserror::Error)]
#[error("kernel image {path} is damaged or cut short: {cause:#}; rebuild it, or give another")]
pub struct Damaged {
    path: String,
    cause: anyhow::Error,
}

/// What to do with a bzImage whose payload does not unpack.
#[derive(Clone, Copy, PartialEq)]
enum IfDamaged {
    /// Say so ([`Damaged`]): the user's own image.
    Refuse,
    /// Boot the bzImage as before: a distribution's, whose bytes were verified, so the
    /// fault would be bpflab's unpacking, not the image.
    BootIt,
}

/// What `vmlinux.json` beside a derived vmlinux says: which bzImage it came from, and its
/// own hash, so that a damaged one is derived again, never booted; and the file's
/// fingerprint when it was written, so that a run need not hash its tens of megabytes
/// again while nothing has touched it. An empty `sha256` records a bzImage whose payload
/// is no PVH ELF, so that it is not unpacked again on every run.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
struct Derived {
    from_sha256: String,
    sha256: String,
    stat: Option<Fingerprint>,
    /// The bzImage's own fingerprint, for one the user gives (a distribution's was
    /// verified against its archive's hash already).
    #[serde(default)]
    from_stat: Option<Fingerprint>,
}

/// The PVH-bootable vmlinux of `bzimage` (whose SHA-256 is `bzimage_sha256`), kept in
/// `dir`: derived now if it is not there, or not intact, or of another bzImage. `None`
/// when the kernel cannot boot that way (no `CONFIG_PVH`, or a payload that is not a PVH
/// ELF), and the bzImage is booted as before.
pub fn vmlinux(
    bzimage: &Path,
    bzimage_sha256: &str,
    config: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    if !config.is_some_and(says_pvh) {
        return Ok(None);
    }
    let recorded = read_stamp(dir).filter(|r| r.from_sha256 == bzimage_sha256);
    let from = Source {
        path: bzimage,
        sha256: bzimage_sha256,
        stat: None,
        if_damaged: IfDamaged::BootIt,
    };
    derive(&from, recorded, dir)
}

/// The same for a kernel image the user gives by path (`--kernel ./bzImage`), kept in
/// `dir`: `None` for anything but an x86 bzImage, for one whose build config beside it
/// lacks `CONFIG_PVH`, and for one whose payload is no PVH ELF. The image is hashed only
/// when it changed since the vmlinux was derived from it; a new build at the same path
/// replaces the vmlinux of the old one.
pub fn vmlinux_of_own(
    bzimage: &Path,
    config: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    if !is_bzimage(bzimage) || config.is_some_and(|c| !says_pvh(c)) {
        return Ok(None);
    }
    let stat = Fingerprint::of(bzimage);
    let recorded = read_stamp(dir);
    let unchanged = recorded
        .as_ref()
        .filter(|r| stat.is_some() && r.from_stat == stat)
        .map(|r| r.from_sha256.clone());
    let (sha256, recorded) = match unchanged {
        Some(sha256) => (sha256, recorded),
        None => {
            let sha256 = digest::sha256_file(bzimage)?;
            let recorded = recorded.filter(|r| r.from_sha256 == sha256);
            (sha256, recorded)
        }
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let from = Source {
        path: bzimage,
        sha256: &sha256,
        stat,
        if_damaged: IfDamaged::Refuse,
    };
    let derived = derive(&from, recorded, dir);
    if derived.is_err() {
        // Leave no empty folder behind (`remove_dir` removes only an empty one).
        let _ = std::fs::remove_dir(dir);
    }
    derived
}

/// The bzImage a vmlinux is derived from.
struct Source<'a> {
    path: &'a Path,
    sha256: &'a str,
    /// Its fingerprint now, for an image the user gives.
    stat: Option<Fingerprint>,
    if_damaged: IfDamaged,
}

fn says_pvh(config: &Path) -> bool {
    std::fs::read_to_string(config).is_ok_and(|text| text.lines().any(|l| l == "CONFIG_PVH=y"))
}

/// Whether the file starts as an x86 bzImage (the boot protocol's `HdrS` magic).
fn is_bzimage(path: &Path) -> bool {
    let mut head = [0u8; 0x206];
    std::fs::File::open(path).is_ok_and(|mut f| f.read_exact(&mut head).is_ok())
        && &head[0x202..] == b"HdrS"
}

fn read_stamp(dir: &Path) -> Option<Derived> {
    let bytes = std::fs::read(dir.join("vmlinux.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Uses the vmlinux `recorded` (a stamp of this very bzImage) describes if it is intact,
/// else unpacks it again.
fn derive(from: &Source, recorded: Option<Derived>, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let out = dir.join("vmlinux");
    let stamp = dir.join("vmlinux.json");
    if let Some(r) = recorded {
        let stat = Fingerprint::of(&out);
        let intact = r.sha256.is_empty()
            || (stat.is_some() && r.stat == stat)
            || digest::sha256_file(&out).ok().as_deref() == Some(r.sha256.as_str());
        if intact {
            let found = (!r.sha256.is_empty()).then_some(out);
            // Remember the fingerprints seen now, so the next run need not hash either
            // file; a run that cannot write the cache has lost nothing by it.
            let stat = found.as_ref().and(stat);
            if r.stat != stat || r.from_stat != from.stat {
                let r = Derived {
                    stat,
                    from_stat: from.stat,
                    ..r
                };
                let _ = write_stamp(&stamp, &r, dir);
            }
            return Ok(found);
        }
    }
    remove_abandoned_partials(dir);
    crate::term::status(format!(
        "unpacking the vmlinux inside {}, once, to boot it through PVH (nothing to decompress \
         under emulation)",
        from.path.display()
    ));
    let image =
        std::fs::read(from.path).with_context(|| format!("reading {}", from.path.display()))?;
    let mut derived = Derived {
        from_sha256: from.sha256.to_string(),
        sha256: String::new(),
        stat: None,
        from_stat: from.stat,
    };
    let unpacked = payload::payload(&image).and_then(|p| match p {
        Some(p) => payload::decompress(p),
        None => Ok(None),
    });
    let elf = match unpacked {
        Ok(Some(elf)) if note::has_pvh_note(&elf) => elf,
        Err(cause) if from.if_damaged == IfDamaged::Refuse => {
            return Err(Damaged {
                path: from.path.display().to_string(),
                cause,
            }
            .into())
        }
        // Not what a PVH boot needs (no PVH note, a compressor bpflab does not unpack, a
        // header too old to say): boot the bzImage, as any kernel without PVH, and
        // remember that.
        _ => {
            let _ = std::fs::remove_file(&out);
            write_stamp(&stamp, &derived, dir)?;
            return Ok(None);
        }
    };
    let partial = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::fs::write(partial.path(), &elf)
        .with_context(|| format!("writing the vmlinux into {}", dir.display()))?;
    partial
        .persist(&out)
        .map_err(|e| e.error)
        .with_context(|| format!("moving {} into place", out.display()))?;
    derived.sha256 = digest::sha256_bytes(&elf);
    derived.stat = Fingerprint::of(&out);
    write_stamp(&stamp, &derived, dir)?;
    Ok(Some(out))
}

/// A run killed while writing a vmlinux (SIGKILL, power loss) leaves its temporary file:
/// one older than any write takes is removed (a younger one may be another run's).
fn remove_abandoned_partials(dir: &Path) {
    const ABANDONED: Duration = Duration::from_secs(3600);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > ABANDONED));
        if old && entry.file_name().to_string_lossy().starts_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `vmlinux.json` whole, by a rename, like the vmlinux: another run may be reading
/// it.
fn write_stamp(stamp: &Path, derived: &Derived, dir: &Path) -> anyhow::Result<()> {
    let partial = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(partial.path(), serde_json::to_vec_pretty(derived)?)?;
    partial
        .persist(stamp)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
