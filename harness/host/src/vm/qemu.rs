//! The QEMU command line for a lesson VM (pure: what to run, not running it).

use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::kernel::KernelVersion;
use crate::vm::accel::Accel;

/// The least guest memory (`-m`, MiB) every lesson runs with. Measured under TCG on
/// x86-64: the default kernel (6.1) boots lesson 1 from 76 MiB and every lesson from 88
/// (with less, "Out of memory" panics, or a reboot before the kernel starts at 64); on 7.2
/// lessons 3 and 31, the hungriest, need more than 112, and they pass at 128 on 6.1, 7.2
/// and 7.3-rc. On arm64, 6.1 runs lessons 1 and 3 with 96.
pub const MIN_MEMORY_MIB: u32 = 128;

/// The machine type QEMU emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Machine {
    /// x86-64 `microvm`: no PCI, no firmware scan; the fastest boot.
    Microvm,
    /// x86-64 `pc`: the standard PC, slower to boot, works with any x86 kernel.
    Pc,
    /// arm64 `virt`.
    Virt,
}

/// The first Linux that takes `tsc_early_khz=` (5.8). Under TCG on microvm, a kernel
/// must be told the TSC's rate: it calibrates the TSC against the PIT, which fails under
/// emulation, and microvm has no HPET or ACPI PM timer to fall back on, so an older guest
/// hangs after "Marking TSC unstable" (Ubuntu's 4.15 in 9 boots of 9, 5.4 in 5 of 8, 4.4
/// in 2 of 7). `pc` has both timers and booted those kernels every time.
pub const TSC_EARLY_KHZ_SINCE: KernelVersion = KernelVersion { major: 5, minor: 8 };

impl Machine {
    /// The default machine for a kernel of `version` (when known) on `arch` with
    /// `accel`: microvm on x86-64, the fastest to boot, unless the kernel is too old to
    /// boot on it under emulation; then `pc`. A kernel of unknown version gets microvm.
    pub fn default_for(arch: Arch, accel: Accel, version: Option<KernelVersion>) -> Machine {
        match arch {
            Arch::X86_64
                if accel == Accel::Tcg && version.is_some_and(|v| v < TSC_EARLY_KHZ_SINCE) =>
            {
                Machine::Pc
            }
            Arch::X86_64 => Machine::Microvm,
            Arch::Arm64 => Machine::Virt,
        }
    }
}

/// How the guest's event channel reaches the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A second serial port of its own: kernel messages can never mix with events.
    SecondSerial,
    /// Events share the console port, recognised by their marker.
    SharedConsole,
}

/// Everything that decides the command line.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Guest arch.
    pub arch: Arch,
    /// KVM or TCG.
    pub accel: Accel,
    /// Machine type.
    pub machine: Machine,
    /// Kernel image.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Path prefix of the channel FIFOs (`<prefix>.in`, `<prefix>.out`).
    pub channel_fifo: PathBuf,
    /// Host CPU kHz for `tsc_early_khz` (TCG on x86 only).
    pub tsc_khz: Option<u64>,
    /// Show the whole boot log (no `quiet`).
    pub verbose_kernel: bool,
    /// QEMU CPU model instead of the default (`host` with KVM; QEMU's default on x86-64
    /// and `cortex-a57` on arm64 under TCG).
    pub cpu: Option<String>,
    /// What the kernel starts as its first process.
    pub init: Init,
}

/// The guest's first process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// bpflab's agent, `/init`.
    #[default]
    Agent,
    /// busybox's `poweroff -f`: the guest does nothing and powers off, so a boot with
    /// it is the floor any run on this kernel and these flags stands on (`bpflab bench`).
    PowerOff,
}

impl QemuConfig {
    /// Where the channel comes out, and the device the guest writes it to.
    pub fn channel(&self) -> (ChannelKind, &'static str) {
        match self.arch {
            Arch::X86_64 => (ChannelKind::SecondSerial, "/dev/ttyS1"),
            // QEMU's arm64 `virt` machine has a single non-secure UART.
            Arch::Arm64 => (ChannelKind::SharedConsole, "/dev/ttyAMA0"),
        }
    }

    /// The kernel command line.
    pub fn kernel_cmdline(&self) -> String {
        let console = match self.arch {
            Arch::X86_64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        };
        let rdinit = match self.init {
            Init::Agent => "rdinit=/init",
            // busybox runs the applet its name says.
            Init::PowerOff => "rdinit=/bin/poweroff",
        };
        let mut args = vec![
            format!("console={console}"),
            rdinit.into(),
            // Reboot at once on panic; with -no-reboot QEMU then exits.
            "panic=-1".into(),
            // An oops in a probe should end the run, not leave a half-working guest.
            "oops=panic".into(),
            "nokaslr".into(),
        ];
        if !self.verbose_kernel {
            args.push("quiet".into());
        }
        if self.arch == Arch::X86_64 {
            // No PS/2 controller is emulated: skip probing for one.
            args.extend(["i8042.noaux", "i8042.nokbd", "i8042.nopnp"].map(String::from));
            if self.accel == Accel::Tcg {
                if let Some(khz) = self.tsc_khz {
                    args.push(format!("tsc_early_khz={khz}"));
                }
            }
        }
        if self.init == Init::PowerOff {
            // After `--`, the kernel passes the words to init as its arguments (with any
            // parameter it does not know itself: `nokaslr` under PVH, which poweroff
            // ignores).
            args.extend(["--", "-f"].map(String::from));
        }
        args.join(" ")
    }

    /// The full argument list for [`Arch::qemu_binary`].
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&[
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        match self.accel {
            Accel::Kvm => push(&["-accel", "kvm"]),
            Accel::Tcg => push(&["-accel", "tcg"]),
        }
        let cpu = match (&self.cpu, self.accel, self.arch) {
            (Some(cpu), _, _) => Some(cpu.as_str()),
            (None, Accel::Kvm, _) => Some("host"),
            // Measured under TCG with lesson 1 on 6.1: see the README's arm64 section.
            (None, Accel::Tcg, Arch::Arm64) => Some("cortex-a57"),
            (None, Accel::Tcg, Arch::X86_64) => None,
        };
        if let Some(cpu) = cpu {
            push(&["-cpu", cpu]);
        }
        match self.machine {
            // pit/pic/rtc: under TCG a microvm guest without them hangs in timer setup.
            Machine::Microvm => push(&["-M", "microvm,pit=on,pic=on,rtc=on,isa-serial=on"]),
            Machine::Pc => push(&["-M", "pc"]),
            Machine::Virt => push(&["-M", "virt"]),
        }
        let mem = self.memory_mib.to_string();
        push(&["-smp", "1", "-m", &mem]);
        push(&[
            "-kernel",
            &path(&self.kernel),
            "-initrd",
            &path(&self.initrd),
        ]);
        let cmdline = self.kernel_cmdline();
        push(&["-append", &cmdline]);
        // Console on QEMU's stdout; the channel on FIFOs.
        push(&["-chardev", "stdio,id=console,signal=off"]);
        let fifo = format!("pipe,id=channel,path={}", option_value(&self.channel_fifo));
        push(&["-chardev", &fifo]);
        match (self.channel().0, self.machine) {
            (ChannelKind::SecondSerial, Machine::Microvm) => push(&[
                "-serial",
                "chardev:console",
                "-device",
                "isa-serial,chardev=channel,index=1",
            ]),
            (ChannelKind::SecondSerial, _) => {
                push(&["-serial", "chardev:console", "-serial", "chardev:channel"])
            }
            (ChannelKind::SharedConsole, _) => push(&["-serial", "chardev:console"]),
        }
        a
    }
}

/// A path given as a whole argument (`-kernel`, `-initrd`): QEMU takes it verbatim.
fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A path inside an option string (`-chardev ...,path=`): QEMU splits those at commas, so
/// a comma in the path (a `TMPDIR` with one) is written twice.
fn option_value(p: &Path) -> String {
    path(p).replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(arch: Arch, accel: Accel) -> QemuConfig {
        QemuConfig {
            arch,
            accel,
            machine: Machine::default_for(arch, accel, None),
            kernel: "/k/vmlinuz".into(),
            initrd: "/t/initrd".into(),
            memory_mib: 512,
            channel_fifo: "/t/channel".into(),
            init: Init::Agent,
            tsc_khz: Some(2445404),
            verbose_kernel: false,
            cpu: None,
        }
    }

    #[test]
    fn tcg_microvm_gets_its_timers_and_tsc_rate() {
        let c = config(Arch::X86_64, Accel::Tcg);
        let args = c.args().join(" ");
        assert!(args.contains("microvm,pit=on,pic=on,rtc=on"), "{args}");
        assert!(args.contains("-accel tcg"));
        assert!(c.kernel_cmdline().contains("tsc_early_khz=2445404"));
        assert!(c.kernel_cmdline().contains("console=ttyS0"));
        assert!(args.contains("isa-serial,chardev=channel,index=1"));
    }

    #[test]
    fn kernels_older_than_tsc_early_khz_boot_on_pc_under_tcg() {
        let v = |major, minor| Some(KernelVersion { major, minor });
        let x86 = |accel, version| Machine::default_for(Arch::X86_64, accel, version);
        for old in [v(4, 4), v(4, 15), v(5, 4), v(5, 7)] {
            assert_eq!(x86(Accel::Tcg, old), Machine::Pc, "{old:?}");
            // KVM gives the guest its TSC rate: microvm boots them.
            assert_eq!(x86(Accel::Kvm, old), Machine::Microvm, "{old:?}");
        }
        for new in [v(5, 8), v(5, 10), v(6, 1), v(7, 3), None] {
            assert_eq!(x86(Accel::Tcg, new), Machine::Microvm, "{new:?}");
        }
        assert_eq!(
            Machine::default_for(Arch::Arm64, Accel::Tcg, v(4, 4)),
            Machine::Virt
        );
    }

    #[test]
    fn kvm_needs_no_tsc_hint() {
        let c = config(Arch::X86_64, Accel::Kvm);
        assert!(!c.kernel_cmdline().contains("tsc_early_khz"));
        assert!(c.args().join(" ").contains("-accel kvm -cpu host"));
    }

    #[test]
    fn arm64_uses_virt_and_its_uart() {
        let c = config(Arch::Arm64, Accel::Tcg);
        let args = c.args().join(" ");
        assert!(
            args.contains("-M virt") && args.contains("-cpu cortex-a57"),
            "{args}"
        );
        assert!(c.kernel_cmdline().contains("console=ttyAMA0"));
        assert_eq!(c.channel().0, ChannelKind::SharedConsole);
    }

    #[test]
    fn commas_in_paths_are_escaped_only_inside_option_strings() {
        let mut c = config(Arch::X86_64, Accel::Tcg);
        c.kernel = "/a,b/vmlinuz".into();
        c.initrd = "/a,b/initrd".into();
        c.channel_fifo = "/a,b/channel".into();
        let args = c.args();
        let after = |flag: &str| {
            let at = args.iter().position(|a| a == flag).unwrap();
            args[at + 1].as_str()
        };
        // Checked with QEMU 7.2: `-chardev ...,path=/a,,b/x` opens `/a,b/x`, while
        // `-kernel /a,,b/vmlinuz` would look for a directory named `a,,b`.
        assert!(
            args.contains(&"pipe,id=channel,path=/a,,b/channel".to_string()),
            "{args:?}"
        );
        assert_eq!(after("-kernel"), "/a,b/vmlinuz");
        assert_eq!(after("-initrd"), "/a,b/initrd");
    }

    #[test]
    fn the_guest_has_no_network_and_no_shared_directory() {
        let args = config(Arch::X86_64, Accel::Tcg).args().join(" ");
        assert!(args.contains("-nodefaults"));
        for forbidden in ["-netdev", "-nic", "virtfs", "9p", "-drive"] {
            assert!(!args.contains(forbidden), "{forbidden} in {args}");
        }
    }
}
