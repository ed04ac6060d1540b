//! The kernel's symbol table, as `/proc/kallsyms` prints it.
//!
//! Lessons use it for two things: choosing which kernel function to probe (names change
//! between versions and architectures) and turning an instruction address back into
//! `function+offset` for the learner.

use std::collections::HashMap;

/// A parsed `/proc/kallsyms`.
#[derive(Debug, Default, Clone)]
pub struct Kallsyms {
    by_name: HashMap<String, u64>,
    /// Text symbols sorted by address, for address → symbol lookups.
    by_addr: Vec<(u64, String)>,
}

impl Kallsyms {
    /// Parses the text of `/proc/kallsyms`: `address type name [module]` per line.
    pub fn parse(text: &str) -> Kallsyms {
        let mut by_name = HashMap::new();
        let mut by_addr = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            by_name.entry(name.to_string()).or_insert(addr);
            // Only code symbols (t/T, and w/W weak ones) make sense for an instruction pointer.
            if matches!(kind, "t" | "T" | "w" | "W") && addr != 0 {
                by_addr.push((addr, name.to_string()));
            }
        }
        by_addr.sort();
        Kallsyms { by_name, by_addr }
    }

    /// Whether the kernel has a symbol with exactly this name.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The first of `candidates` this kernel has, in the order given.
    pub fn first_of<'a>(&self, candidates: &[&'a str]) -> Option<&'a str> {
        candidates.iter().copied().find(|c| self.contains(c))
    }

    /// `function+0xoffset` for an instruction address, or `None` when it is below every
    /// known symbol (or the table has no addresses, as when kptr_restrict hides them).
    pub fn describe(&self, addr: u64) -> Option<String> {
        let idx = self.by_addr.partition_point(|(a, _)| *a <= addr);
        let (start, name) = self.by_addr.get(idx.checked_sub(1)?)?;
        Some(format!("{name}+{:#x}", addr - start))
    }

    /// Number of symbols read.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The names the kernel function behind a system call has had, newest convention first.
///
/// Since 4.17 (x86-64) and 4.19 (arm64) syscalls enter through per-arch wrappers such as
/// `__x64_sys_clone`; before that the function was plain `sys_clone`. This is what BCC's
/// `get_syscall_fnname` works out too.
pub fn syscall_candidates(syscall: &str, arch: &str) -> Vec<String> {
    let prefix = match arch {
        "x86_64" => "__x64_sys_",
        "aarch64" | "arm64" => "__arm64_sys_",
        _ => "sys_",
    };
    let mut names = vec![format!("{prefix}{syscall}")];
    if prefix != "sys_" {
        names.push(format!("sys_{syscall}"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
0000000000000000 A fixed_percpu_data
ffffffff81000000 T _stext
ffffffff810a1230 T __x64_sys_clone
ffffffff810a1290 T __x64_sys_clone3
ffffffff810a12f0 t kernel_clone_helper
ffffffff812b0000 T kmem_cache_alloc_node_noprof
ffffffff812b0400 T kmem_cache_free
ffffffff82000000 D some_data
ffffffffc0002000 t virtio_probe\t[virtio]
";

    #[test]
    fn finds_the_syscall_wrapper_of_new_kernels() {
        let syms = Kallsyms::parse(SAMPLE);
        let names = syscall_candidates("clone", "x86_64");
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(syms.first_of(&names), Some("__x64_sys_clone"));
    }

    #[test]
    fn falls_back_to_sys_clone_on_old_kernels() {
        let syms = Kallsyms::parse("ffffffff81060000 T sys_clone\n");
        let names = syscall_candidates("clone", "x86_64");
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(syms.first_of(&names), Some("sys_clone"));
        assert_eq!(
            syscall_candidates("clone", "aarch64")[0],
            "__arm64_sys_clone"
        );
    }

    #[test]
    fn reports_none_when_no_candidate_exists() {
        let syms = Kallsyms::parse(SAMPLE);
        assert_eq!(syms.first_of(&["kmem_cache_alloc_node", "nope"]), None);
        assert!(syms.contains("kmem_cache_alloc_node_noprof"));
    }

    #[test]
    fn describes_addresses_as_symbol_plus_offset() {
        let syms = Kallsyms::parse(SAMPLE);
        assert_eq!(
            syms.describe(0xffffffff810a1234).as_deref(),
            Some("__x64_sys_clone+0x4")
        );
        assert_eq!(
            syms.describe(0xffffffff812b0400).as_deref(),
            Some("kmem_cache_free+0x0")
        );
        // Module symbols keep their name; data symbols are not code.
        assert_eq!(
            syms.describe(0xffffffffc0002010).as_deref(),
            Some("virtio_probe+0x10")
        );
        assert_eq!(syms.describe(0x1000), None);
    }

    #[test]
    fn hidden_addresses_parse_but_describe_nothing() {
        let syms = Kallsyms::parse("0000000000000000 T __x64_sys_clone\n");
        assert!(syms.contains("__x64_sys_clone"));
        assert_eq!(syms.describe(0xffffffff81000000), None);
    }
}
