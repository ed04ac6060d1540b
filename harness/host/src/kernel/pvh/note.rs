//! Whether an unpacked kernel can be booted through PVH: a 64-bit ELF whose program
//! headers hold a note of type `XEN_ELFNOTE_PHYS32_ENTRY` under the name "Xen". Every
//! offset comes from the file, so every sum is checked: a crafted header is "no", never a
//! panic.

/// The ELF note type of the PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`), under the name
/// "Xen".
pub const PVH_NOTE: u32 = 18;

/// `len` bytes of `bytes` at `at`, if they are all there.
fn field(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(field(bytes, at, 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(field(bytes, at, 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(field(bytes, at, 8)?.try_into().ok()?))
}

/// Whether `elf` is a 64-bit little-endian ELF with a PVH entry note in a `PT_NOTE`
/// segment.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (u64_at(elf, 0x20), u16_at(elf, 0x36), u16_at(elf, 0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        let Some(ph) = i
            .checked_mul(usize::from(phentsize))
            .and_then(|o| o.checked_add(phoff))
        else {
            return false;
        };
        let (Some(4), Some(offset), Some(size)) = (
            u32_at(elf, ph),
            ph.checked_add(8).and_then(|at| u64_at(elf, at)),
            ph.checked_add(32).and_then(|at| u64_at(elf, at)),
        ) else {
            return false;
        };
        let (Ok(offset), Ok(size)) = (usize::try_from(offset), usize::try_from(size)) else {
            return false;
        };
        notes(elf, offset, size).any(|(name, kind)| name == b"Xen\0" && kind == PVH_NOTE)
    })
}

/// The (name, type) of each note in `elf[offset..offset + size]`.
fn notes(elf: &[u8], offset: usize, size: usize) -> impl Iterator<Item = (&[u8], u32)> {
    let area = field(elf, offset, size).unwrap_or(&[]);
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let word = |i: usize| u32_at(area, i).map(|w| w as usize);
        let (namesz, descsz, kind) = (
            word(at)?,
            word(at.checked_add(4)?)?,
            word(at.checked_add(8)?)?,
        );
        let name = field(area, at.checked_add(12)?, namesz)?;
        let padded = |n: usize| n.div_ceil(4) * 4;
        at = at
            .checked_add(12)?
            .checked_add(padded(namesz))?
            .checked_add(padded(descsz))?;
        Some((name, kind as u32))
    })
}
