//! What to run, and the defaults a learner gets.

use std::time::Duration;

use bpflab_protocol::Fault;

use crate::arch::Arch;
use crate::kernel::KernelSpec;
use crate::vm::accel::AccelRequest;
use crate::vm::qemu::Machine;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Lessons by number, each with the parts to run (empty: all).
    pub lessons: Vec<(u32, Vec<String>)>,
    /// Which kernel; `None` for the catalog's default.
    pub kernel: Option<KernelSpec>,
    /// Guest architecture.
    pub arch: Arch,
    /// KVM or TCG.
    pub accel: AccelRequest,
    /// Machine type; `None` for the arch's default.
    pub machine: Option<Machine>,
    /// Limit for the VM, from QEMU's start to its exit (none: no limit).
    pub timeout: Option<Duration>,
    /// After the lessons, an interactive shell in the guest on the user's terminal.
    pub shell: bool,
    /// Guest memory.
    pub memory_mib: u32,
    /// Full kernel boot log on the console.
    pub verbose_kernel: bool,
    /// Re-resolve the kernel from the archive even if one is cached.
    pub refresh_kernel: bool,
    /// A failure the guest should cause on purpose (tests of error handling).
    pub fault: Option<Fault>,
    /// QEMU CPU model, instead of the default.
    pub cpu: Option<String>,
    /// A cache directory for this run instead of the configured one (the benchmark's
    /// cold run uses an empty one).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Ask the guest which of every feature a lesson can need its kernel has (the
    /// matrix's feature table). A lesson run asks only for what its lessons need.
    pub probe_features: bool,
}

/// How long a run may take unless told otherwise: lessons take seconds; a guest still
/// running after this is stuck.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);
/// Guest memory unless told otherwise: room for every lesson on every kernel measured
/// (the hungriest need 128 MiB), with margin.
pub const DEFAULT_MEMORY_MIB: u32 = 512;

impl Default for RunRequest {
    /// No lessons yet, on the catalog's default kernel for the host's arch.
    fn default() -> RunRequest {
        RunRequest {
            lessons: Vec::new(),
            kernel: None,
            arch: Arch::host().unwrap_or(Arch::X86_64),
            accel: AccelRequest::Auto,
            machine: None,
            timeout: Some(DEFAULT_TIMEOUT),
            shell: false,
            memory_mib: DEFAULT_MEMORY_MIB,
            verbose_kernel: false,
            refresh_kernel: false,
            fault: None,
            cpu: None,
            cache_dir: None,
            probe_features: false,
        }
    }
}

impl RunRequest {
    /// Lesson `number` with the defaults a learner gets.
    pub fn lesson(number: u32) -> RunRequest {
        RunRequest {
            lessons: vec![(number, Vec::new())],
            ..RunRequest::default()
        }
    }
}
