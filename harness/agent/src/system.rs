//! What PID 1 has to do before and after the lessons: mounts, limits, the event channel,
//! power.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context as _;

/// Mounts the pseudo file systems lessons rely on. Those a kernel lacks (tracefs before
/// 4.1) are skipped: the trace pipe is also reachable through debugfs.
pub fn mount_pseudo_filesystems() -> anyhow::Result<()> {
    let required = [("devtmpfs", "/dev"), ("proc", "/proc"), ("sysfs", "/sys")];
    for (fstype, target) in required {
        mount(fstype, target).with_context(|| format!("mounting {fstype} on {target}"))?;
    }
    for (fstype, target) in [
        ("debugfs", "/sys/kernel/debug"),
        ("tracefs", "/sys/kernel/tracing"),
    ] {
        if let Err(e) = mount(fstype, target) {
            bpflab_guest::console_log(format_args!("{fstype} not mounted on {target}: {e}"));
        }
    }
    Ok(())
}

fn mount(fstype: &str, target: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    let source = CString::new(fstype).expect("no NUL");
    let target_c = CString::new(target).expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EBUSY) {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Before 5.11, BPF maps and programs are charged against RLIMIT_MEMLOCK, whose default
/// (64 KiB) is too small for most programs; later kernels account them to the cgroup.
pub fn raise_memlock_limit() -> anyhow::Result<()> {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        return Err(std::io::Error::last_os_error()).context("raising RLIMIT_MEMLOCK");
    }
    Ok(())
}

/// Opens the serial port the host reads events from, in raw mode (no `\n` → `\r\n`).
pub fn open_channel(path: &str) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("opening the event channel {path}"))?;
    // SAFETY: termios calls on an open tty descriptor with a zeroed, then filled struct.
    unsafe {
        let mut tio: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(file.as_raw_fd(), &mut tio) == 0 {
            libc::cfmakeraw(&mut tio);
            libc::tcsetattr(file.as_raw_fd(), libc::TCSANOW, &tio);
        }
    }
    Ok(file)
}

/// `uname -r` and `uname -m`.
pub fn uname() -> (String, String) {
    // SAFETY: uname fills the zeroed struct; fields are NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        libc::uname(&mut u);
        let field = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        (field(&u.release), field(&u.machine))
    }
}

/// Milliseconds since the kernel started (includes the time before init ran).
pub fn boottime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Powers the VM off. PID 1 must never return, so if power-off fails we reboot (QEMU runs
/// with -no-reboot, which turns that into an exit) and, failing that, wait to be killed.
pub fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
        libc::reboot(libc::RB_AUTOBOOT);
    }
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
