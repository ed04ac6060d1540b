//! Workloads lessons run inside the guest, so their probes have something to see.

use anyhow::Context as _;

/// Creates `n` child processes with the clone(2) system call, one after the other; each
/// exits at once and is reaped.
///
/// Called explicitly because not every way of making a process goes through clone:
/// musl's `fork()` uses the fork system call, which a kprobe on clone never sees.
pub fn clone_children(n: usize) -> anyhow::Result<()> {
    for _ in 0..n {
        // SAFETY: a raw clone with only SIGCHLD set behaves like fork(). The child calls
        // nothing but _exit, which is async-signal-safe, so the copied address space of
        // this multi-threaded process is never used in a state it cannot handle.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        match pid {
            0 => unsafe { libc::_exit(0) },
            -1 => return Err(std::io::Error::last_os_error()).context("clone(2) failed"),
            pid => {
                let mut status = 0;
                // SAFETY: waiting for the child just created.
                unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
            }
        }
    }
    Ok(())
}
