//! What bpflab needs of the host, and the Debian packages that provide each need: the
//! roots to unpack, whether their dependencies come too, and which dependencies are
//! left out because nothing bpflab runs uses them.

use std::path::{Path, PathBuf};

use crate::arch::Arch;

/// One thing bpflab needs to run a lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// QEMU's system emulator for guests of this arch.
    Qemu(Arch),
    /// clang, to compile the lessons' C to BPF objects.
    Clang,
    /// libbpf's headers (`bpf/bpf_helpers.h`), which the lessons include.
    LibbpfHeaders,
    /// The kernel's UAPI headers of this guest arch (`linux/bpf.h`, `asm/ptrace.h`).
    Uapi(Arch),
    /// bpftool for guests of this arch: a program for the guest, never the host's.
    Bpftool(Arch),
}

/// Every need, in the order `bpflab doctor` lists them.
pub const ALL: [Need; 6] = [
    Need::Qemu(Arch::X86_64),
    Need::Qemu(Arch::Arm64),
    Need::Clang,
    Need::LibbpfHeaders,
    Need::Uapi(Arch::X86_64),
    Need::Uapi(Arch::Arm64),
];

/// What the guest can be given besides the agent, in the order `bpflab doctor` lists them.
pub const GUEST: [Need; 2] = [Need::Bpftool(Arch::X86_64), Need::Bpftool(Arch::Arm64)];

/// The Debian release the guest's programs come from. The guest has no C library of its
/// own (they bring Debian's), so any release would run; one fixed release keeps what the
/// lessons show of them (bpftool's output) the same on every host. Bookworm's bpftool
/// (7.1, from Linux 6.1) is the one of the default kernel's series.
pub const GUEST_RELEASE: &str = "bookworm";

/// Dependencies that only packages' maintainer scripts use (bpflab runs none: it unpacks).
const NEVER: &[&str] = &[
    "^debconf(-2\\.0)?$",
    "^adduser$",
    "^dpkg$",
    "^init-system-helpers$",
    "^lsb-base$",
    "^sysvinit-utils$",
    "^passwd$",
];

/// The packages that provide a need.
#[derive(Debug, Clone)]
pub struct PackageSet {
    /// Its key in `images/tools.lock` and in the cache (`qemu-x86_64`, `clang`).
    pub key: String,
    /// The packages asked for.
    pub roots: Vec<String>,
    /// Whether their dependencies (`Depends`, `Pre-Depends`) come too: programs need
    /// their libraries; headers, read by clang, need nothing.
    pub closure: bool,
    /// Dependencies left out (regular expressions on names), besides `NEVER` (those only
    /// maintainer scripts use, which every set leaves out).
    pub exclude: Vec<&'static str>,
    /// Packages taken without their dependencies.
    pub shallow: Vec<&'static str>,
    /// Whether it is for the guest, which has nothing of its own: the closure takes glibc
    /// too, and nothing counts as the host's.
    pub guest: bool,
}

impl PackageSet {
    /// Whether the dependency `name` is left out.
    pub fn excludes(&self, name: &str) -> bool {
        self.exclude
            .iter()
            .chain(NEVER)
            .any(|pattern| regex_lite::Regex::new(pattern).is_ok_and(|re| re.is_match(name)))
    }

    /// Whether the dependencies of the package `name` come with it.
    pub fn follows(&self, name: &str) -> bool {
        self.closure && !self.shallow.contains(&name)
    }
}

impl Need {
    /// What it is, for people.
    pub fn describe(self) -> String {
        match self {
            Need::Qemu(arch) => format!("QEMU for {arch} guests ({})", arch.qemu_binary()),
            Need::Clang => "clang (C → BPF objects)".into(),
            Need::LibbpfHeaders => "libbpf's headers (bpf/bpf_helpers.h)".into(),
            Need::Uapi(arch) => format!("{arch} kernel headers (asm/ptrace.h, linux/bpf.h)"),
            Need::Bpftool(arch) => format!("bpftool for {arch} guests (--shell, lesson 8)"),
        }
    }

    /// Whether it runs in the guest (its packages are of the guest's arch, and of
    /// [`GUEST_RELEASE`]), not on the host.
    pub fn for_guest(self) -> bool {
        matches!(self, Need::Bpftool(_))
    }

    /// The arch of its packages on a host of arch `host`: the guest's, for the guest.
    pub fn package_arch(self, host: Arch) -> Arch {
        match self {
            Need::Bpftool(arch) => arch,
            _ => host,
        }
    }

    /// The Debian packages that provide it on a host of arch `host`.
    pub fn packages(self, host: Arch) -> PackageSet {
        let set = |key: String, roots: &[&str], closure, exclude: Vec<&'static str>| PackageSet {
            key,
            roots: roots.iter().map(|r| r.to_string()).collect(),
            closure,
            exclude,
            shallow: vec![],
            guest: false,
        };
        match self {
            // qemu-system-common holds QEMU's loadable modules: of them, bpflab's command
            // line loads only the TCG accelerator's, which needs no library the emulator
            // does not; the others' (display, audio, USB redirection) are left out. It is
            // a root: QEMU loads modules from beside its own binary, never the host's.
            Need::Qemu(arch) => PackageSet {
                shallow: vec!["qemu-system-common"],
                ..set(
                    format!("qemu-{arch}"),
                    &[arch.qemu_package(), "qemu-system-common"],
                    true,
                    vec!["^qemu-system-gui$"],
                )
            },
            // `clang` depends on the versioned clang-N of its release. clang compiles
            // with `-c` only: no linker, no C or C++ runtime, no libclang (the C API for
            // other tools).
            Need::Clang => set(
                "clang".into(),
                &["clang"],
                true,
                vec![
                    "^lib(stdc\\+\\+|gcc|objc)-[0-9]+-dev$",
                    "^llvm-[0-9]+-linker-tools$",
                    "^libclang1-[0-9]+$",
                    "^libc6-dev$",
                    "^binutils$",
                ],
            ),
            // Its dependencies are the library itself and what linking it needs.
            Need::LibbpfHeaders => set("libbpf-headers".into(), &["libbpf-dev"], false, vec![]),
            Need::Uapi(arch) => set(
                format!("uapi-{arch}"),
                &[&uapi_package(arch, host)],
                false,
                vec![],
            ),
            // bpftool needs libelf, zlib, libcap and glibc; glibc's own dependency
            // (libgcc-s1) comes along, though bpftool does not load it.
            Need::Bpftool(_) => PackageSet {
                guest: true,
                ..set("guest-bpftool".into(), &["bpftool"], true, vec![])
            },
        }
    }

    /// The Debian package a host's apt installs it from (for messages).
    pub fn apt_package(self, host: Arch) -> String {
        match self {
            Need::Qemu(arch) => arch.qemu_package().into(),
            Need::Clang => "clang".into(),
            Need::LibbpfHeaders => "libbpf-dev".into(),
            Need::Uapi(arch) => uapi_package(arch, host),
            Need::Bpftool(_) => "bpftool".into(),
        }
    }

    /// The program bpflab runs, if the need is one: its name on PATH.
    pub fn program(self) -> Option<&'static str> {
        match self {
            Need::Qemu(arch) => Some(arch.qemu_binary()),
            Need::Clang => Some("clang"),
            Need::LibbpfHeaders | Need::Uapi(_) | Need::Bpftool(_) => None,
        }
    }

    /// The oldest version bpflab works with (major, minor): QEMU 4.2 brought the microvm
    /// machine; clang 10 the CO-RE relocations lesson 2 uses.
    pub fn minimum(self) -> Option<(u32, u32)> {
        match self {
            Need::Qemu(_) => Some((4, 2)),
            Need::Clang => Some((10, 0)),
            Need::LibbpfHeaders | Need::Uapi(_) | Need::Bpftool(_) => None,
        }
    }

    /// Where the host has it, for the headers: the include directory that holds them
    /// (none needed beyond clang's defaults is `Some(None)`).
    pub fn host_headers(self) -> Option<Option<PathBuf>> {
        match self {
            Need::LibbpfHeaders => Path::new("/usr/include/bpf/bpf_helpers.h")
                .is_file()
                .then_some(None),
            Need::Uapi(arch) => asm_include_dir(arch).map(Some),
            Need::Qemu(_) | Need::Clang | Need::Bpftool(_) => None,
        }
    }

    /// The include directories of an unpacked root of its packages, for headers.
    pub fn include_dirs(self, root: &Path) -> Vec<PathBuf> {
        let dirs = match self {
            Need::LibbpfHeaders => vec![root.join("usr/include")],
            Need::Uapi(arch) => vec![
                root.join("usr").join(arch.gnu_triple()).join("include"),
                root.join("usr/include").join(arch.gnu_triple()),
                root.join("usr/include"),
            ],
            Need::Qemu(_) | Need::Clang | Need::Bpftool(_) => vec![],
        };
        dirs.into_iter().filter(|d| d.is_dir()).collect()
    }
}

/// Where the host has the guest arch's `asm/` headers. They must be the guest's, not the
/// host's: libbpf's PT_REGS_* macros read `struct pt_regs` (x86-64) or `struct
/// user_pt_regs` (arm64) from them. Debian keeps the native arch's in the multiarch
/// directory and another arch's in a `-cross` package.
pub fn asm_include_dir(arch: Arch) -> Option<PathBuf> {
    let triple = arch.gnu_triple();
    [
        format!("/usr/include/{triple}"),
        format!("/usr/{triple}/include"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("asm/ptrace.h").is_file())
}

/// The native arch's headers are `linux-libc-dev`; another arch's, its `-cross` package.
fn uapi_package(arch: Arch, host: Arch) -> String {
    if arch == host {
        "linux-libc-dev".into()
    } else {
        format!("linux-libc-dev-{}-cross", arch.debian_arch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_sets_name_what_a_host_of_each_arch_installs() {
        let uapi = Need::Uapi(Arch::Arm64);
        assert_eq!(
            uapi.packages(Arch::X86_64).roots,
            ["linux-libc-dev-arm64-cross"]
        );
        assert_eq!(uapi.packages(Arch::Arm64).roots, ["linux-libc-dev"]);
        let clang = Need::Clang.packages(Arch::X86_64);
        assert!(clang.closure);
        for left_out in [
            "libstdc++-12-dev",
            "llvm-14-linker-tools",
            "binutils",
            "debconf",
        ] {
            assert!(clang.excludes(left_out), "{left_out}");
        }
        for kept in [
            "clang-14",
            "libllvm14",
            "libclang-common-14-dev",
            "libclang-cpp14",
        ] {
            assert!(!clang.excludes(kept), "{kept}");
        }
        let qemu = Need::Qemu(Arch::X86_64).packages(Arch::X86_64);
        assert!(qemu.roots.contains(&"qemu-system-common".to_string()));
        assert!(!qemu.follows("qemu-system-common") && qemu.follows("qemu-system-x86"));
    }
}
