//! Before booting: does this kernel have what the lessons need? Checked from its build
//! config when bpflab has it (Debian's and Ubuntu's packages and minimal builds come with
//! one). A kernel that cannot run bpflab's guest or load BPF at all is refused with the
//! missing options named, instead of failing obscurely inside the guest. One without BPF
//! tracing (arm64 before 4.10 has no kprobes) boots: each lesson that needs a probe says
//! so itself, as the guest finds the feature missing.

use crate::arch::Arch;

/// What the guest needs built in to run at all, and why.
const NEEDED: &[(&str, &str)] = &[
    ("CONFIG_BPF_SYSCALL", "the bpf() system call"),
    ("CONFIG_BLK_DEV_INITRD", "booting from bpflab's initramfs"),
    ("CONFIG_DEVTMPFS", "device nodes in the guest"),
];

/// What the tracing lessons need, and why: without it they report themselves unsupported.
const TRACING: &[(&str, &str)] = &[
    ("CONFIG_KPROBES", "kprobes"),
    ("CONFIG_KPROBE_EVENTS", "attaching BPF programs to kprobes"),
    ("CONFIG_BPF_EVENTS", "BPF programs on trace events"),
    (
        "CONFIG_PERF_EVENTS",
        "perf events, through which probes are attached",
    ),
];

/// Options that had another name in older kernels: `KPROBE_EVENTS` was `KPROBE_EVENT`
/// until 4.11.
const FORMERLY: &[(&str, &str)] = &[("CONFIG_KPROBE_EVENTS", "CONFIG_KPROBE_EVENT")];

/// The options `config` (a kernel `.config`) lacks for running bpflab's guest on `arch`.
pub fn missing(config: &str, arch: Arch) -> Vec<String> {
    let console: &[(&str, &str)] = match arch {
        Arch::X86_64 => &[("CONFIG_SERIAL_8250_CONSOLE", "the serial console")],
        Arch::Arm64 => &[("CONFIG_SERIAL_AMBA_PL011_CONSOLE", "the serial console")],
    };
    unset(config, NEEDED.iter().chain(console))
}

/// The options `config` lacks for BPF tracing (kprobes, trace events).
pub fn missing_tracing(config: &str) -> Vec<String> {
    unset(config, TRACING.iter())
}

fn unset<'a>(config: &str, options: impl Iterator<Item = &'a (&'a str, &'a str)>) -> Vec<String> {
    let set = |option: &str| config.lines().any(|l| l.trim() == format!("{option}=y"));
    let set_by_any_name = |option: &str| {
        set(option)
            || FORMERLY
                .iter()
                .any(|(now, before)| *now == option && set(before))
    };
    options
        .filter(|(option, _)| !set_by_any_name(option))
        .map(|(option, why)| format!("{option}=y ({why})"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "CONFIG_BPF_SYSCALL=y\nCONFIG_KPROBES=y\nCONFIG_KPROBE_EVENTS=y\n\
        CONFIG_BPF_EVENTS=y\nCONFIG_PERF_EVENTS=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_DEVTMPFS=y\n\
        CONFIG_SERIAL_8250_CONSOLE=y\n";

    #[test]
    fn a_complete_config_lacks_nothing() {
        assert!(missing(GOOD, Arch::X86_64).is_empty());
    }

    #[test]
    fn a_kernel_without_kprobes_boots_and_is_named_as_such() {
        let config = GOOD.replace("CONFIG_KPROBES=y", "# CONFIG_KPROBES is not set");
        assert!(missing(&config, Arch::X86_64).is_empty());
        assert_eq!(missing_tracing(&config), ["CONFIG_KPROBES=y (kprobes)"]);
        let no_bpf = GOOD.replace("CONFIG_BPF_SYSCALL=y", "");
        assert_eq!(
            missing(&no_bpf, Arch::X86_64),
            ["CONFIG_BPF_SYSCALL=y (the bpf() system call)"]
        );
        // The console a guest needs depends on the arch.
        assert!(missing(GOOD, Arch::Arm64)[0].starts_with("CONFIG_SERIAL_AMBA_PL011_CONSOLE"));
    }

    #[test]
    fn an_old_kernel_may_name_an_option_as_it_was_then_called() {
        let k44 = GOOD.replace("CONFIG_KPROBE_EVENTS=y", "CONFIG_KPROBE_EVENT=y");
        assert!(missing_tracing(&k44).is_empty());
        let none = GOOD.replace("CONFIG_KPROBE_EVENTS=y", "");
        assert_eq!(
            missing_tracing(&none),
            ["CONFIG_KPROBE_EVENTS=y (attaching BPF programs to kprobes)"]
        );
    }

    #[test]
    fn the_cached_debian_kernels_pass_when_present() {
        let Some(cache) = dirs::cache_dir() else {
            return;
        };
        let config = cache.join("bpflab/kernels/x86_64/6.1/config");
        if let Ok(text) = std::fs::read_to_string(config) {
            assert!(
                missing(&text, Arch::X86_64).is_empty(),
                "{:?}",
                missing(&text, Arch::X86_64)
            );
        }
    }
}
