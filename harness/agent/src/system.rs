//! What PID 1 has to do before and after the lessons: mounts, limits, the event channel,
//! power.

use std::fs::File;

use anyhow::Context as _;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::MountFlags;
use rustix::process::{Resource, Rlimit};
use rustix::system::RebootCommand;
use rustix::termios::OptionalActions;
use rustix::time::ClockId;

/// Mounts the pseudo file systems lessons rely on. Those a kernel lacks (tracefs before
/// 4.1) are skipped: the trace pipe is also reachable through debugfs, and a lesson that
/// pins maps says it is unsupported where there is no BPF file system.
pub fn mount_pseudo_filesystems() -> anyhow::Result<()> {
    let required = [("devtmpfs", "/dev"), ("proc", "/proc"), ("sysfs", "/sys")];
    for (fstype, target) in required {
        mount(fstype, target).with_context(|| format!("mounting {fstype} on {target}"))?;
    }
    for (fstype, target) in [
        ("debugfs", "/sys/kernel/debug"),
        ("tracefs", "/sys/kernel/tracing"),
        // Where BPF objects are pinned (bpffs, 4.4+): lesson 6.
        ("bpf", "/sys/fs/bpf"),
    ] {
        if let Err(e) = mount(fstype, target) {
            bpflab_guest::console_log(format_args!("{fstype} not mounted on {target}: {e}"));
        }
    }
    Ok(())
}

fn mount(fstype: &str, target: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    // Pseudo file systems have no device: the source is only a name, the type's.
    match rustix::mount::mount(fstype, target, fstype, MountFlags::empty(), None) {
        // EBUSY: it is mounted there already.
        Ok(()) | Err(Errno::BUSY) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Before 5.11, BPF maps and programs are charged against RLIMIT_MEMLOCK, whose default
/// (64 KiB) is too small for most programs; later kernels account them to the cgroup.
pub fn raise_memlock_limit() -> anyhow::Result<()> {
    // `None` is RLIM_INFINITY.
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    rustix::process::setrlimit(Resource::Memlock, unlimited).context("raising RLIMIT_MEMLOCK")
}

/// Opens the serial port the host reads events from, in raw mode (no `\n` → `\r\n`).
pub fn open_channel(path: &str) -> anyhow::Result<File> {
    // The port carries data: never the agent's controlling terminal (NOCTTY), never
    // inherited by the programs lessons start (CLOEXEC, as std opens every file).
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = rustix::fs::open(path, flags, Mode::empty())
        .map(File::from)
        .with_context(|| format!("opening the event channel {path}"))?;
    // Best effort: a channel that is not a terminal has no modes to set.
    if let Ok(mut tio) = rustix::termios::tcgetattr(&file) {
        tio.make_raw();
        let _ = rustix::termios::tcsetattr(&file, OptionalActions::Now, &tio);
    }
    Ok(file)
}

/// `uname -r` and `uname -m`.
pub fn uname() -> (String, String) {
    let u = rustix::system::uname();
    let field = |f: &std::ffi::CStr| f.to_string_lossy().into_owned();
    (field(u.release()), field(u.machine()))
}

/// Milliseconds since the kernel started (includes the time before init ran).
pub fn boottime_ms() -> u64 {
    let ts = rustix::time::clock_gettime(ClockId::Boottime);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Powers the VM off. PID 1 must never return, so if power-off fails we reboot (QEMU runs
/// with -no-reboot, which turns that into an exit) and, failing that, wait to be killed.
pub fn power_off() -> ! {
    rustix::fs::sync();
    let _ = rustix::system::reboot(RebootCommand::PowerOff);
    let _ = rustix::system::reboot(RebootCommand::Restart);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Causes a failure on purpose (see [`bpflab_protocol::Fault`]).
pub fn cause(fault: bpflab_protocol::Fault) {
    use bpflab_protocol::Fault;
    bpflab_guest::console_log(format_args!("causing the requested fault: {fault:?}"));
    match fault {
        Fault::KernelPanic => {
            // Magic SysRq `c` dereferences NULL in the kernel: a real panic, with a real oops.
            let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
            let _ = std::fs::write("/proc/sysrq-trigger", "c");
        }
        Fault::Hang => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Fault::Silent => power_off(),
        Fault::AgentCrash => std::process::abort(),
    }
}
