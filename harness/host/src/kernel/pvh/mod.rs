//! The uncompressed `vmlinux` inside a distribution's x86-64 `bzImage`, for PVH boot.
//!
//! QEMU boots an x86-64 ELF `vmlinux` that carries a PVH entry note (`CONFIG_PVH=y`,
//! which Debian and Ubuntu set from 5.0) straight into the kernel at its 32-bit entry:
//! no real-mode setup code, no decompressor copying and unpacking tens of megabytes under
//! emulation. A `bzImage` holds exactly that ELF, compressed, as its payload; this module
//! takes it out, once, when the kernel is cached. The bzImage it comes from was checked
//! against the archive's signed hash, and what comes out must be an ELF with the PVH note
//! or it is not used.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context as _};

use crate::digest::{self, Fingerprint};

/// No kernel this side of absurd unpacks to more (Debian's 6.1 is about 60 MiB).
const MAX_VMLINUX: usize = 512 << 20;

/// The ELF note type of the PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`), under the name
/// "Xen".
const PVH_NOTE: u32 = 18;

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
    derive(bzimage, bzimage_sha256, None, recorded, dir)
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
    let now = Fingerprint::of(bzimage);
    let recorded = read_stamp(dir);
    if let Some(r) = recorded
        .as_ref()
        .filter(|r| now.is_some() && r.from_stat == now)
    {
        let sha256 = r.from_sha256.clone();
        return derive(bzimage, &sha256, now, recorded, dir);
    }
    let sha256 = digest::sha256_file(bzimage)?;
    let recorded = recorded.filter(|r| r.from_sha256 == sha256);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    derive(bzimage, &sha256, now, recorded, dir)
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
fn derive(
    bzimage: &Path,
    bzimage_sha256: &str,
    bzimage_stat: Option<Fingerprint>,
    recorded: Option<Derived>,
    dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let out = dir.join("vmlinux");
    let stamp = dir.join("vmlinux.json");
    if let Some(r) = recorded {
        if r.sha256.is_empty() {
            return Ok(None);
        }
        let now = Fingerprint::of(&out);
        if now.is_some() && r.stat == now {
            return Ok(Some(out));
        }
        if digest::sha256_file(&out).ok().as_deref() == Some(r.sha256.as_str()) {
            // Intact: remember its fingerprint, so the next run need not hash it.
            let r = Derived { stat: now, ..r };
            write_stamp(&stamp, &r, dir)?;
            return Ok(Some(out));
        }
    }
    crate::term::status(format!(
        "unpacking the vmlinux inside {}, once, to boot it through PVH (nothing to decompress \
         under emulation)",
        bzimage.display()
    ));
    let image = std::fs::read(bzimage).with_context(|| format!("reading {}", bzimage.display()))?;
    let mut derived = Derived {
        from_sha256: bzimage_sha256.to_string(),
        sha256: String::new(),
        stat: None,
        from_stat: bzimage_stat,
    };
    let elf = match payload(&image).and_then(decompress) {
        Ok(elf) if has_pvh_note(&elf) => elf,
        // Not what a PVH boot needs: boot the bzImage, as any kernel without PVH.
        _ => {
            write_stamp(&stamp, &derived, dir)?;
            return Ok(None);
        }
    };
    let partial = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::fs::write(partial.path(), &elf)?;
    partial
        .persist(&out)
        .with_context(|| format!("moving {} into place", out.display()))?;
    derived.sha256 = digest::sha256_bytes(&elf);
    derived.stat = Fingerprint::of(&out);
    write_stamp(&stamp, &derived, dir)?;
    Ok(Some(out))
}

/// Writes `vmlinux.json` whole, by a rename, like the vmlinux: another run may be reading
/// it.
fn write_stamp(stamp: &Path, derived: &Derived, dir: &Path) -> anyhow::Result<()> {
    let partial = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(partial.path(), serde_json::to_vec_pretty(derived)?)?;
    partial
        .persist(stamp)
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(())
}

/// The compressed kernel inside a bzImage: `payload_offset` and `payload_length` of the
/// boot protocol (2.08+), from the start of the protected-mode code, which follows the
/// `setup_sects` 512-byte sectors of setup code and the boot sector.
fn payload(image: &[u8]) -> anyhow::Result<&[u8]> {
    ensure!(image.get(0x202..0x206) == Some(b"HdrS"), "not a bzImage");
    let u32_at = |at: usize| -> anyhow::Result<usize> {
        let bytes = image.get(at..at + 4).context("bzImage header cut short")?;
        Ok(u32::from_le_bytes(bytes.try_into()?) as usize)
    };
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    let length = u32_at(0x24c)?;
    image
        .get(start..start + length)
        .context("the bzImage's payload lies outside it")
}

/// Unpacks a kernel payload by its magic. Kbuild appends the unpacked size, 4 bytes
/// little-endian, after every compressor's stream.
fn decompress(payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    ensure!(payload.len() > 8, "empty payload");
    let (stream, size) = payload.split_at(payload.len() - 4);
    let size = u32::from_le_bytes(size.try_into()?) as usize;
    ensure!(
        size <= MAX_VMLINUX,
        "the payload claims {size} bytes unpacked"
    );
    let mut out = Vec::with_capacity(size);
    match stream {
        [0x02, 0x21, 0x4c, 0x18, ..] => out = lz4_legacy(&stream[4..], size)?,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => bounded(crate::zstd::reader(stream)?, &mut out)?,
        [0x1f, 0x8b, ..] => bounded(flate2::read::GzDecoder::new(stream), &mut out)?,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            bounded(xz2::read::XzDecoder::new(stream), &mut out)?
        }
        [b'B', b'Z', b'h', ..] => bounded(bzip2::read::BzDecoder::new(stream), &mut out)?,
        _ => bail!("a payload compressed in a way bpflab does not unpack"),
    }
    ensure!(
        out.len() == size,
        "unpacked {} bytes, not {size}",
        out.len()
    );
    Ok(out)
}

fn bounded(reader: impl std::io::Read, out: &mut Vec<u8>) -> anyhow::Result<()> {
    reader.take(MAX_VMLINUX as u64 + 1).read_to_end(out)?;
    ensure!(out.len() <= MAX_VMLINUX, "the payload unpacks to too much");
    Ok(())
}

/// `lz4 -l`'s legacy frame, as Kbuild writes it: after the magic, blocks of at most 8 MiB
/// unpacked, each a 4-byte little-endian length and an LZ4 block.
fn lz4_legacy(mut stream: &[u8], size: usize) -> anyhow::Result<Vec<u8>> {
    const BLOCK: usize = 8 << 20;
    let mut out = vec![0u8; size];
    let mut filled = 0;
    while stream.len() >= 4 && filled < size {
        let (len, rest) = stream.split_at(4);
        let len = u32::from_le_bytes(len.try_into()?) as usize;
        let block = rest.get(..len).context("an LZ4 block cut short")?;
        let room = (size - filled).min(BLOCK);
        filled += lz4_flex::block::decompress_into(block, &mut out[filled..filled + room])
            .map_err(|e| anyhow::anyhow!("an LZ4 block does not unpack: {e}"))?;
        stream = &rest[len..];
    }
    out.truncate(filled);
    Ok(out)
}

/// Whether `elf` is a 64-bit little-endian ELF with a PVH entry note in a `PT_NOTE`
/// segment.
fn has_pvh_note(elf: &[u8]) -> bool {
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum as usize).any(|i| {
        let ph = phoff as usize + i * phentsize as usize;
        let (Some(4), Some(offset), Some(size)) = (u32_at(ph), u64_at(ph + 8), u64_at(ph + 32))
        else {
            return false;
        };
        notes(elf, offset as usize, size as usize)
            .any(|(name, kind)| name == b"Xen\0" && kind == PVH_NOTE)
    })
}

/// The (name, type) of each note in `elf[offset..offset + size]`.
fn notes(elf: &[u8], offset: usize, size: usize) -> impl Iterator<Item = (&[u8], u32)> {
    let area = elf.get(offset..offset.saturating_add(size)).unwrap_or(&[]);
    let mut at = 0;
    std::iter::from_fn(move || {
        let word = |i: usize| {
            area.get(i..i + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let (namesz, descsz, kind) = (word(at)?, word(at + 4)?, word(at + 8)?);
        let name = area.get(at + 12..at + 12 + namesz)?;
        at += 12 + namesz.div_ceil(4) * 4 + descsz.div_ceil(4) * 4;
        Some((name, kind as u32))
    })
}

#[cfg(test)]
mod tests;
