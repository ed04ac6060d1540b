//! What a dynamically linked program loads: its interpreter (`PT_INTERP`, the dynamic
//! loader's path) and the libraries it names (`DT_NEEDED`). Enough of ELF to put a
//! Debian program and exactly the files it loads into the guest, no more: 64-bit,
//! little-endian (x86-64 and arm64). The file is a package's, checked against its pin,
//! but is still read defensively: every offset is checked against the file's length.

use anyhow::{bail, Context as _};

/// What a program needs to be loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// The dynamic loader it names (`/lib64/ld-linux-x86-64.so.2`), if any.
    pub interpreter: Option<String>,
    /// The libraries it names (`libelf.so.1`), in order.
    pub needed: Vec<String>,
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

fn bytes_at(data: &[u8], at: u64, len: u64) -> anyhow::Result<&[u8]> {
    let start = usize::try_from(at)?;
    let end = start
        .checked_add(usize::try_from(len)?)
        .context("an ELF offset overflows")?;
    data.get(start..end)
        .with_context(|| format!("an ELF offset ({at:#x}+{len}) lies past the file's end"))
}

fn u16_at(data: &[u8], at: u64) -> anyhow::Result<u16> {
    Ok(u16::from_le_bytes(bytes_at(data, at, 2)?.try_into()?))
}

fn u32_at(data: &[u8], at: u64) -> anyhow::Result<u32> {
    Ok(u32::from_le_bytes(bytes_at(data, at, 4)?.try_into()?))
}

fn u64_at(data: &[u8], at: u64) -> anyhow::Result<u64> {
    Ok(u64::from_le_bytes(bytes_at(data, at, 8)?.try_into()?))
}

/// A NUL-terminated string at `at`.
fn string_at(data: &[u8], at: u64) -> anyhow::Result<String> {
    let rest = data
        .get(usize::try_from(at)?..)
        .context("an ELF string lies past the file's end")?;
    let end = rest
        .iter()
        .position(|b| *b == 0)
        .context("an ELF string without its end")?;
    Ok(String::from_utf8(rest[..end].to_vec())?)
}

/// A program header: (type, file offset, virtual address, size in the file).
type Segment = (u32, u64, u64, u64);

/// Reads the interpreter and needed libraries of the ELF file `data`.
pub fn dynamic(data: &[u8]) -> anyhow::Result<Dynamic> {
    if data.get(..4) != Some(b"\x7fELF") || data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let phoff = u64_at(data, 0x20)?;
    let phentsize = u64::from(u16_at(data, 0x36)?);
    let phnum = u64::from(u16_at(data, 0x38)?);
    let segments: Vec<Segment> = (0..phnum)
        .map(|i| {
            let at = phoff + i * phentsize;
            Ok((
                u32_at(data, at)?,
                u64_at(data, at + 8)?,
                u64_at(data, at + 16)?,
                u64_at(data, at + 32)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut out = Dynamic::default();
    if let Some(&(_, offset, _, size)) = segments.iter().find(|s| s.0 == PT_INTERP) {
        out.interpreter = Some(string_at(bytes_at(data, offset, size)?, 0)?);
    }
    let Some(&(_, offset, _, size)) = segments.iter().find(|s| s.0 == PT_DYNAMIC) else {
        return Ok(out); // statically linked
    };
    let mut entries = Vec::new();
    for i in 0..size / 16 {
        let tag = u64_at(data, offset + i * 16)?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, u64_at(data, offset + i * 16 + 8)?));
    }
    let strtab = entries
        .iter()
        .find(|e| e.0 == DT_STRTAB)
        .context("a dynamic section without its string table")?
        .1;
    // DT_STRTAB is an address: the file offset is that of the loaded segment holding it.
    let strtab = segments
        .iter()
        .find(|s| s.0 == PT_LOAD && s.2 <= strtab && strtab < s.2 + s.3)
        .map(|s| strtab - s.2 + s.1)
        .context("the string table lies outside every loaded segment")?;
    for (_, name) in entries.iter().filter(|e| e.0 == DT_NEEDED) {
        out.needed.push(string_at(data, strtab + name)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF: one PT_LOAD at address 0x1000 holding everything, a PT_INTERP and a
    /// PT_DYNAMIC naming two libraries.
    fn sample() -> Vec<u8> {
        let mut f = vec![0u8; 0x200];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&3u16.to_le_bytes());
        let mut ph = |i: usize, kind: u32, off: u64, vaddr: u64, size: u64| {
            let at = 0x40 + i * 56;
            f[at..at + 4].copy_from_slice(&kind.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        };
        ph(0, PT_LOAD, 0, 0x1000, 0x200);
        ph(1, PT_INTERP, 0x100, 0x1100, 12);
        ph(2, PT_DYNAMIC, 0x140, 0x1140, 64);
        f[0x100..0x10c].copy_from_slice(b"/lib/ld.so\0\0");
        // Strings at file 0x180 (address 0x1180): "\0liba.so.1\0libb.so.2\0".
        f[0x180..0x196].copy_from_slice(b"\0liba.so.1\0libb.so.2\0\0");
        let dynamic = [
            (DT_NEEDED, 1u64),
            (DT_STRTAB, 0x1180),
            (DT_NEEDED, 11),
            (0, 0),
        ];
        for (i, (tag, value)) in dynamic.iter().enumerate() {
            let at = 0x140 + i * 16;
            f[at..at + 8].copy_from_slice(&tag.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&value.to_le_bytes());
        }
        f
    }

    #[test]
    fn the_interpreter_and_needed_libraries_are_read() {
        let found = dynamic(&sample()).unwrap();
        assert_eq!(found.interpreter.as_deref(), Some("/lib/ld.so"));
        assert_eq!(found.needed, ["liba.so.1", "libb.so.2"]);
    }

    #[test]
    fn a_cut_or_foreign_file_is_an_error_not_a_panic() {
        let whole = sample();
        for len in [3, 0x30, 0x60, 0x150] {
            assert!(dynamic(&whole[..len]).is_err(), "cut at {len}");
        }
        assert!(dynamic(b"#!/bin/sh\n").is_err());
    }
}
