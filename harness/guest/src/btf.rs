//! Kernel BTF, and the objects that cannot run without it.
//!
//! A program written with CO-RE (`BPF_CORE_READ()`, `bpf_core_read()`, structs marked
//! `preserve_access_index`) carries a relocation for every kernel field it reads, in its
//! `.BTF.ext` section: the loader looks each field up in the running kernel's BTF and
//! patches its real offset into the instruction. Without kernel BTF, aya loads the program
//! unpatched, with the offsets of the object's own struct definitions: it passes the
//! verifier, runs, and reads the wrong bytes (lesson 2's ports, on 4.15). So an object with
//! CO-RE relocations is unsupported on a kernel without BTF, and is never loaded there.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bpflab_protocol::BUILT_BTF_PATH;
use object::{Object as _, ObjectSection as _};

/// Where the kernel shows its own BTF (`CONFIG_DEBUG_INFO_BTF`, since 5.2).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What an object with CO-RE relocations needs, for the learner: the feature, the option
/// that builds it and the version that brought it.
pub const NEEDS_KERNEL_BTF: &str =
    "needs kernel BTF (CONFIG_DEBUG_INFO_BTF, 5.2+; /sys/kernel/btf/vmlinux)";

/// Where this kernel's own BTF is, if it has any: what the kernel itself knows its types
/// by (fentry and BTF-typed programs need it).
pub fn kernel_btf() -> Option<PathBuf> {
    let path = PathBuf::from(VMLINUX_BTF);
    path.is_file().then_some(path)
}

/// The BTF CO-RE relocations are resolved against: the kernel's own, or else the BTF
/// bpflab encoded from the DWARF of a kernel it built ([`BUILT_BTF_PATH`]). The agent
/// hands the same file to aya's loader.
pub fn core_btf() -> Option<PathBuf> {
    kernel_btf().or_else(|| {
        let built = PathBuf::from(BUILT_BTF_PATH);
        built.is_file().then_some(built)
    })
}

/// How many CO-RE relocations the BPF object `elf` carries (0 when it has no `.BTF.ext`).
pub fn core_relocations(elf: &[u8]) -> anyhow::Result<usize> {
    let file = object::File::parse(elf).context("parsing the BPF object as ELF")?;
    let Some(section) = file.section_by_name(".BTF.ext") else {
        return Ok(0);
    };
    let data = section.data().context("reading .BTF.ext")?;
    count_core_relocations(data).context("parsing .BTF.ext")
}

/// Counts the records of `.BTF.ext`'s CO-RE relocation part (`struct btf_ext_header` in
/// the kernel's `tools/lib/bpf/libbpf_internal.h`): a header whose `hdr_len` covers
/// `core_relo_off` and `core_relo_len` (32 bytes; older headers of 24 have no such part),
/// then at `hdr_len + core_relo_off` the record size, and per program section its name's
/// offset, its record count and the records.
fn count_core_relocations(data: &[u8]) -> anyhow::Result<usize> {
    let little = match data.get(0..2) {
        Some([0x9f, 0xeb]) => true,
        Some([0xeb, 0x9f]) => false,
        _ => bail!("no BTF magic (0xeb9f)"),
    };
    let u32_at = |at: usize| -> anyhow::Result<usize> {
        let bytes: [u8; 4] = data
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("truncated at byte {at} of {}", data.len()))?;
        let value = match little {
            true => u32::from_le_bytes(bytes),
            false => u32::from_be_bytes(bytes),
        };
        Ok(value as usize)
    };
    let header_len = u32_at(4)?;
    if header_len < 32 {
        return Ok(0);
    }
    let (offset, len) = (u32_at(24)?, u32_at(28)?);
    if len == 0 {
        return Ok(0);
    }
    let start = header_len + offset;
    let end = start + len;
    if end > data.len() {
        bail!(
            "the CO-RE part ({start}..{end}) runs past the section's {} bytes",
            data.len()
        );
    }
    let record_size = u32_at(start)?;
    if record_size == 0 {
        bail!("CO-RE records of size 0");
    }
    let (mut at, mut records) = (start + 4, 0);
    while at < end {
        let count = u32_at(at + 4)?;
        records += count;
        at += 8 + count * record_size;
    }
    if at != end {
        bail!("the CO-RE part's records end at {at}, not at {end}");
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian `.BTF.ext` with no function or line info and `sections` CO-RE
    /// sections of `(records)` 16-byte records each.
    fn btf_ext(header_len: u32, sections: &[u32]) -> Vec<u8> {
        let mut core = 16u32.to_le_bytes().to_vec();
        for (i, &count) in sections.iter().enumerate() {
            core.extend_from_slice(&(i as u32 * 8).to_le_bytes());
            core.extend_from_slice(&count.to_le_bytes());
            core.extend(std::iter::repeat_n(0xaa, 16 * count as usize));
        }
        let mut data = vec![0x9f, 0xeb, 1, 0];
        data.extend_from_slice(&header_len.to_le_bytes());
        data.extend_from_slice(&[0; 16]); // func_info and line_info: empty
        if header_len >= 32 {
            data.extend_from_slice(&0u32.to_le_bytes());
            data.extend_from_slice(&(core.len() as u32).to_le_bytes());
            data.extend(core);
        }
        data
    }

    #[test]
    fn counts_every_sections_relocations() {
        assert_eq!(count_core_relocations(&btf_ext(32, &[4])).unwrap(), 4);
        assert_eq!(count_core_relocations(&btf_ext(32, &[3, 2])).unwrap(), 5);
    }

    #[test]
    fn a_header_without_the_core_part_has_none() {
        assert_eq!(count_core_relocations(&btf_ext(24, &[])).unwrap(), 0);
        assert_eq!(count_core_relocations(&btf_ext(32, &[])).unwrap(), 0);
    }

    #[test]
    fn a_truncated_or_foreign_section_is_an_error_not_zero() {
        let mut cut = btf_ext(32, &[4]);
        cut.truncate(cut.len() - 1);
        assert!(count_core_relocations(&cut).is_err());
        assert!(count_core_relocations(b"\x7fELF not btf").is_err());
    }

    #[test]
    fn an_object_that_is_not_elf_is_an_error() {
        assert!(core_relocations(b"not an object").is_err());
    }
}
