//! Asking the kernel whether it can put a kprobe on a function, without reading the whole
//! symbol table.
//!
//! Under emulation `/proc/kallsyms` takes a third of a second to read (tens of thousands
//! of lines formatted by the kernel), while opening a kprobe perf event on one name takes
//! a few milliseconds and answers the better question: not "does the symbol exist" but
//! "can a kprobe go there" (blacklisted and `notrace` functions exist but cannot be probed).

use std::ffi::CString;
use std::os::fd::{FromRawFd as _, OwnedFd};

/// The first fields of the kernel's `struct perf_event_attr`: exactly its first published
/// layout (`PERF_ATTR_SIZE_VER1`, 72 bytes), which every kernel accepts.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttrV1 {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    /// For a kprobe event: the function's name.
    config1: u64,
    /// For a kprobe event: the offset into it.
    config2: u64,
}

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `perf_event_attr.disabled`, the first bit of its flags.
const PERF_ATTR_DISABLED: u64 = 1;

/// What the kernel said about a candidate.
#[derive(Debug)]
pub enum Probeable {
    /// A kprobe can be placed on it: the one just placed, removed when this is dropped
    /// (which waits for an RCU grace period).
    Yes(OwnedFd),
    /// No such function, or one that cannot be probed.
    No,
    /// This kernel cannot answer this way (no kprobe PMU before 4.17, or another error):
    /// ask `/proc/kallsyms` instead.
    Unknown,
}

/// The perf event type of the kprobe PMU, if this kernel has one (≥ 4.17).
fn kprobe_pmu_type() -> Option<u32> {
    std::fs::read_to_string("/sys/bus/event_source/devices/kprobe/type")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Opens a kprobe perf event on `function`, which answers the question; dropping the
/// answer closes it.
pub fn kprobe(function: &str) -> Probeable {
    let Some(pmu) = kprobe_pmu_type() else {
        return Probeable::Unknown;
    };
    let Ok(name) = CString::new(function) else {
        return Probeable::No;
    };
    let attr = PerfEventAttrV1 {
        type_: pmu,
        size: std::mem::size_of::<PerfEventAttrV1>() as u32,
        config1: name.as_ptr() as u64,
        // Created disabled: the kprobe is placed all the same (which answers the
        // question), but while it stays, until the lesson ends, a hit counts nothing.
        flags: PERF_ATTR_DISABLED,
        ..Default::default()
    };
    // SAFETY: `attr` and the name it points to outlive the call; the kernel reads `size`
    // bytes of `attr`. pid -1 with cpu 0: every process, on one CPU, as aya does.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttrV1,
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd >= 0 {
        // SAFETY: the descriptor was just returned to us, is open, and nothing else owns it.
        return Probeable::Yes(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
    }
    match std::io::Error::last_os_error().raw_os_error() {
        // Unknown symbol, or one kprobes refuse (blacklisted, not a function start).
        Some(libc::ENOENT) | Some(libc::EINVAL) | Some(libc::EILSEQ) => Probeable::No,
        _ => Probeable::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attr_has_the_first_published_layout() {
        // PERF_ATTR_SIZE_VER1 in include/uapi/linux/perf_event.h.
        assert_eq!(std::mem::size_of::<PerfEventAttrV1>(), 72);
    }
}
