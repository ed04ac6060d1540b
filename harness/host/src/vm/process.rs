//! QEMU as a process: started in a group of its own that dies with bpflab, its channel
//! FIFOs, its exit and peak memory, and the terminal it may have left in raw mode.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};

use anyhow::Context as _;

use super::qemu::QemuConfig;
use crate::tools::Program;

/// Whether the child exited, without reaping it (its resource usage is read by `reap`).
pub(super) fn has_exited(child: &Child) -> bool {
    // SAFETY: waitid with WNOWAIT only inspects our own child; the struct is zeroed.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            child.id() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        rc == 0 && info.si_pid() != 0
    }
}

/// Waits for QEMU and reads its resource usage (peak memory), which `Child::wait` drops.
pub(super) fn reap(child: &mut Child) -> (Option<String>, Option<u64>) {
    let mut status = 0;
    // SAFETY: a zeroed rusage for wait4 to fill, for our own child's pid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waits for our own child, filling two locals that outlive the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        return (child.wait().ok().map(|s| s.to_string()), None);
    }
    let described = if libc::WIFEXITED(status) {
        format!("exit status: {}", libc::WEXITSTATUS(status))
    } else {
        format!("signal: {}", libc::WTERMSIG(status))
    };
    // ru_maxrss is in KiB on Linux.
    (Some(described), Some(usage.ru_maxrss as u64))
}

pub(super) fn make_channel_fifos(prefix: &Path) -> anyhow::Result<OwnedFd> {
    for suffix in ["in", "out"] {
        let path = prefix.with_extension(suffix);
        let c = CString::new(path.as_os_str().as_encoded_bytes()).context("FIFO path has a NUL")?;
        // SAFETY: valid path string.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("creating the FIFO {}", path.display()));
        }
    }
    // Opened before QEMU starts, non-blocking, so neither side waits for the other.
    let out = prefix.with_extension("out");
    let c = CString::new(out.as_os_str().as_encoded_bytes()).context("FIFO path has a NUL")?;
    // SAFETY: valid path; the returned descriptor is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("opening {}", out.display()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn spawn(
    qemu: &Program,
    config: &QemuConfig,
    interactive: bool,
) -> anyhow::Result<Child> {
    let mut cmd = qemu.command();
    cmd.args(config.args())
        .stdin(if interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own process group: Ctrl-C goes to bpflab, which stops QEMU itself. (With
            // --shell the terminal is raw and Ctrl-C reaches the guest's shell instead.)
            if !interactive {
                libc::setpgid(0, 0);
            }
            // If bpflab dies without cleaning up (SIGKILL), QEMU dies with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", qemu.path.display()))?;
    for fd in [
        child.stdout.as_ref().map(|s| s.as_raw_fd()),
        child.stderr.as_ref().map(|s| s.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    Ok(child)
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// The terminal's settings, put back when dropped.
pub(super) struct TerminalState(libc::termios);

impl TerminalState {
    pub(super) fn save() -> Option<TerminalState> {
        // SAFETY: tcgetattr on stdin with a zeroed struct to fill.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut tio: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(0, &mut tio) == 0).then_some(TerminalState(tio))
        }
    }
}

impl Drop for TerminalState {
    fn drop(&mut self) {
        // SAFETY: restores settings read from the same descriptor.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}
