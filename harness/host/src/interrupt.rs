//! Ctrl-C and SIGTERM: turned into an event every stage can notice, so each one stops
//! its child processes and removes its temporary files instead of dying mid-write.
//! A second Ctrl-C exits at once.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

use vmm_sys_util::eventfd::EventFd;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static WAKE: OnceLock<EventFd> = OnceLock::new();

/// Installs the handlers. Call once, early.
pub fn install() -> anyhow::Result<()> {
    let wake = WAKE.get_or_init(|| EventFd::new(libc::EFD_NONBLOCK).expect("eventfd"));
    WAKE_FD.store(wake.as_raw_fd(), Ordering::SeqCst);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        vmm_sys_util::signal::register_signal_handler(signal, on_signal)
            .map_err(|e| anyhow::anyhow!("installing the handler for signal {signal}: {e}"))?;
    }
    Ok(())
}

extern "C" fn on_signal(num: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // Second signal: the user means it. Only async-signal-safe calls here.
        // SAFETY: _exit is async-signal-safe and ends the process at once; nothing
        // after it runs.
        unsafe { libc::_exit(128 + num) };
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid u64.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Whether Ctrl-C (or SIGTERM) arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error to return from a stage that stopped because of Ctrl-C.
pub fn check() -> anyhow::Result<()> {
    if interrupted() {
        anyhow::bail!(Interrupted);
    }
    Ok(())
}

/// `error`, unless Ctrl-C arrived meanwhile: then [`Interrupted`], whatever the error
/// looked like (a blocking read cut short by the signal says "Interrupted system call").
pub fn or_interrupted(error: anyhow::Error) -> anyhow::Error {
    match interrupted() {
        true => Interrupted.into(),
        false => error,
    }
}

/// The file descriptor that becomes readable on Ctrl-C (for the VM's event loop), if the
/// handlers are installed.
pub fn wake_fd() -> Option<i32> {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    (fd >= 0).then_some(fd)
}

/// The run was interrupted by the user.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C): stopped cleanly, nothing left behind")]
pub struct Interrupted;
