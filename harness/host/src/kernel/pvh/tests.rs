//! The vmlinux inside a bzImage: found, unpacked, kept and refused.

use super::note::{has_pvh_note, PVH_NOTE};
use super::payload::{decompress, payload};
use super::*;

/// A minimal ELF64 with one PT_NOTE segment holding one note.
fn elf_with_note(name: &[u8], kind: u32) -> Vec<u8> {
    let mut elf = vec![0u8; 0x40 + 0x38];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
    elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
    elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    let note_at = elf.len() as u64;
    let mut note = Vec::new();
    note.extend((name.len() as u32).to_le_bytes());
    note.extend(4u32.to_le_bytes());
    note.extend(kind.to_le_bytes());
    note.extend(name);
    note.resize(note.len().div_ceil(4) * 4, 0);
    note.extend([0u8; 4]);
    let ph = 0x40;
    elf[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes());
    elf[ph + 8..ph + 16].copy_from_slice(&note_at.to_le_bytes());
    elf[ph + 32..ph + 40].copy_from_slice(&(note.len() as u64).to_le_bytes());
    elf.extend(note);
    elf
}

/// A bzImage-shaped file whose payload is `payload` plus Kbuild's size trailer.
fn bzimage(payload: &[u8], unpacked: usize) -> Vec<u8> {
    let mut image = vec![0u8; 5 * 512];
    image[0x1f1] = 4;
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    image[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
    let length = payload.len() as u32 + 4;
    image[0x24c..0x250].copy_from_slice(&length.to_le_bytes());
    image.extend([0u8; 16]);
    image.extend(payload);
    image.extend((unpacked as u32).to_le_bytes());
    image
}

#[test]
fn a_pvh_note_is_found_and_another_note_is_not_one() {
    assert!(has_pvh_note(&elf_with_note(b"Xen\0", PVH_NOTE)));
    assert!(!has_pvh_note(&elf_with_note(b"Xen\0", 6)));
    assert!(!has_pvh_note(&elf_with_note(b"GNU\0", PVH_NOTE)));
    assert!(!has_pvh_note(b"\x7fELF\x02\x01"));
}

#[test]
fn lz4_and_zstd_payloads_unpack_to_the_elf() {
    let elf = elf_with_note(b"Xen\0", PVH_NOTE);
    let block = lz4_flex::block::compress(&elf);
    let mut lz4 = vec![0x02, 0x21, 0x4c, 0x18];
    lz4.extend((block.len() as u32).to_le_bytes());
    lz4.extend(block);
    let zstd = crate::zstd::compress(&elf);
    for stream in [lz4, zstd] {
        let image = bzimage(&stream, elf.len());
        let unpacked = decompress(payload(&image).unwrap().unwrap()).unwrap();
        assert_eq!(unpacked, Some(elf.clone()));
    }
}

#[test]
fn the_vmlinux_is_derived_once_and_again_when_damaged() {
    let elf = elf_with_note(b"Xen\0", PVH_NOTE);
    let image = bzimage(&crate::zstd::compress(&elf), elf.len());
    let dir = tempfile::tempdir().unwrap();
    let (bz, config) = (dir.path().join("vmlinuz"), dir.path().join("config"));
    std::fs::write(&bz, &image).unwrap();
    std::fs::write(&config, "CONFIG_PVH=y\n").unwrap();
    let out = vmlinux(&bz, "aa", Some(&config), dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), elf);
    std::fs::write(&out, b"damaged").unwrap();
    let again = vmlinux(&bz, "aa", Some(&config), dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(again).unwrap(), elf);
    // Without CONFIG_PVH, or with a payload that is no PVH ELF, the bzImage boots.
    std::fs::write(&config, "# CONFIG_PVH is not set\n").unwrap();
    assert_eq!(vmlinux(&bz, "aa", Some(&config), dir.path()).unwrap(), None);
    std::fs::write(&config, "CONFIG_PVH=y\n").unwrap();
    std::fs::write(&bz, bzimage(&crate::zstd::compress(b"not elf at all"), 14)).unwrap();
    assert_eq!(vmlinux(&bz, "bb", Some(&config), dir.path()).unwrap(), None);
}

/// A user's PVH bzImage in a folder of its own, and where its vmlinux is to be kept.
struct Own {
    elf: Vec<u8>,
    dir: tempfile::TempDir,
    bz: std::path::PathBuf,
    cache: std::path::PathBuf,
}

fn own_bzimage() -> Own {
    let elf = elf_with_note(b"Xen\0", PVH_NOTE);
    let dir = tempfile::tempdir().unwrap();
    let (bz, cache) = (dir.path().join("bzImage"), dir.path().join("cache"));
    std::fs::write(&bz, bzimage(&crate::zstd::compress(&elf), elf.len())).unwrap();
    Own {
        elf,
        dir,
        bz,
        cache,
    }
}

#[test]
fn an_own_bzimage_is_unpacked_once_and_again_when_rebuilt() {
    let Own {
        elf,
        dir,
        bz,
        cache,
    } = own_bzimage();
    // No config beside it: the PVH note alone decides.
    let out = vmlinux_of_own(&bz, None, &cache).unwrap().unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), elf);
    let stamp = read_stamp(&cache).unwrap();
    assert_eq!(stamp.from_stat, Fingerprint::of(&bz));
    assert_eq!(
        vmlinux_of_own(&bz, None, &cache).unwrap(),
        Some(out.clone())
    );
    // Rebuilt in place without PVH: booted as given, and remembered as such.
    let other = elf_with_note(b"Xen\0", 6);
    std::fs::write(&bz, bzimage(&crate::zstd::compress(&other), other.len())).unwrap();
    assert_eq!(vmlinux_of_own(&bz, None, &cache).unwrap(), None);
    assert_eq!(read_stamp(&cache).unwrap().sha256, "");
    assert!(
        !out.exists(),
        "the old build's vmlinux is not kept beside it"
    );
    assert_eq!(vmlinux_of_own(&bz, None, &cache).unwrap(), None);
    // Rebuilt with PVH again: the new vmlinux replaces the first one's.
    let third = elf_with_note(b"Xen\0", PVH_NOTE).repeat(2);
    std::fs::write(&bz, bzimage(&crate::zstd::compress(&third), third.len())).unwrap();
    assert_eq!(
        vmlinux_of_own(&bz, None, &cache).unwrap(),
        Some(out.clone())
    );
    assert_eq!(std::fs::read(&out).unwrap(), third);
    // A config that says no PVH, and files that are no bzImage, are booted as given.
    let config = dir.path().join("config");
    std::fs::write(&config, "# CONFIG_PVH is not set\n").unwrap();
    assert_eq!(vmlinux_of_own(&bz, Some(&config), &cache).unwrap(), None);
    std::fs::write(dir.path().join("vmlinux"), &elf).unwrap();
    let plain = dir.path().join("vmlinux");
    assert_eq!(vmlinux_of_own(&plain, None, &cache).unwrap(), None);
}

#[test]
fn a_hostile_header_is_an_error_not_a_panic() {
    let mut image = bzimage(b"xxxxxxxxxx", 10);
    image[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(payload(&image).is_err());
    assert!(decompress(&[0x02, 0x21, 0x4c, 0x18, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]).is_err());
    assert!(decompress(&[0x1f, 0x8b, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]).is_err());
    // A compressor bpflab does not unpack is no error: that kernel boots as a bzImage.
    assert!(matches!(
        decompress(&[0x5d, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]),
        Ok(None)
    ));
    // Before boot protocol 2.08 the header does not say where the payload is.
    image[0x206..0x208].copy_from_slice(&0x0206u16.to_le_bytes());
    assert!(matches!(payload(&image), Ok(None)));
}

#[test]
fn a_hostile_elf_is_no_pvh_kernel_not_a_panic() {
    let mut elf = elf_with_note(b"Xen\0", PVH_NOTE);
    let good = elf.clone();
    for phoff in [u64::MAX - 3, u64::MAX, 1 << 63] {
        elf[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        assert!(!has_pvh_note(&elf));
    }
    // A note segment claiming to lie at the end of the address space.
    let mut elf = good.clone();
    elf[0x40 + 8..0x40 + 16].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
    elf[0x40 + 32..0x40 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(!has_pvh_note(&elf));
    // A note whose name size runs to the end of the address space.
    let mut elf = good;
    let note_at = 0x40 + 0x38;
    elf[note_at..note_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(!has_pvh_note(&elf));
}

#[test]
fn an_own_bzimage_that_does_not_unpack_is_refused_as_damaged() {
    let Own {
        elf,
        dir,
        bz,
        cache,
    } = own_bzimage();
    let mut garbage = vec![0x1f, 0x8b];
    garbage.extend([0x55; 64]);
    let mut cut = bzimage(&crate::zstd::compress(&elf), elf.len());
    cut.truncate(cut.len() - 8);
    for image in [bzimage(&garbage, elf.len()), cut] {
        std::fs::write(&bz, image).unwrap();
        let e = vmlinux_of_own(&bz, None, &cache).unwrap_err();
        assert!(e.is::<Damaged>(), "{e:#}");
        assert!(
            format!("{e:#}").contains("is damaged or cut short"),
            "{e:#}"
        );
    }
    // A distribution's verified image that does not unpack boots as a bzImage.
    let config = dir.path().join("config");
    std::fs::write(&config, "CONFIG_PVH=y\n").unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir(&dist).unwrap();
    assert_eq!(vmlinux(&bz, "cc", Some(&config), &dist).unwrap(), None);
}

#[test]
fn a_touched_own_bzimage_is_hashed_once_more_not_on_every_run() {
    // `_dir` keeps the folder until the test ends.
    let Own {
        dir: _dir,
        bz,
        cache,
        ..
    } = own_bzimage();
    vmlinux_of_own(&bz, None, &cache).unwrap().unwrap();
    // Same bytes, new fingerprint (a `make` that changed nothing, a copy).
    let bytes = std::fs::read(&bz).unwrap();
    std::fs::remove_file(&bz).unwrap();
    std::fs::write(&bz, bytes).unwrap();
    vmlinux_of_own(&bz, None, &cache).unwrap().unwrap();
    assert_eq!(read_stamp(&cache).unwrap().from_stat, Fingerprint::of(&bz));
}
