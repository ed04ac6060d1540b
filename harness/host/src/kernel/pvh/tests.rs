//! The vmlinux inside a bzImage: found, unpacked, kept and refused.

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
        assert_eq!(decompress(payload(&image).unwrap()).unwrap(), elf);
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

#[test]
fn an_own_bzimage_is_unpacked_once_and_again_when_rebuilt() {
    let elf = elf_with_note(b"Xen\0", PVH_NOTE);
    let dir = tempfile::tempdir().unwrap();
    let (bz, cache) = (dir.path().join("bzImage"), dir.path().join("cache"));
    std::fs::write(&bz, bzimage(&crate::zstd::compress(&elf), elf.len())).unwrap();
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
    assert!(decompress(&[0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]).is_err());
}
