// SPDX-License-Identifier: GPL-2.0
//
// Exercise 44.1, kernel side in Rust: lesson 44's counter, to which you add the bytes.
// tcp_sendmsg(sk, msg, size) is called with the size of each send: add it up in the map's
// entry 1, beside the count in entry 0.
//
// There is no operating system under a BPF program, so no standard library (`no_std`)
// and no `main` (`no_main`): the kernel calls the function marked #[kprobe].
#![no_std]
#![no_main]
// Rust's eBPF target has no compare-and-swap, so core offers no `AtomicU64::fetch_add`
// there; the intrinsic underneath it emits the same atomic add (`lock *(u64 *)... +=`)
// that clang emits for C's __sync_fetch_and_add.
#![feature(core_intrinsics)]
#![allow(internal_features)]

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::macros::{kprobe, map};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::ProbeContext;
use core::intrinsics::{atomic_xadd, AtomicOrdering};

// The map, named "stats" in the object as in the C twin, so one user side reads both:
// a hash map with a single entry (key 0) holding the count. #[map] puts it in the
// object's "maps" section, which every kernel with BPF maps can load.
#[map(name = "stats")]
static STATS: HashMap<u32, u64> = HashMap::with_max_entries(1, 0);

// #[kprobe] places the function in the "kprobe" section, as SEC("kprobe") does in C;
// which kernel function it is attached to is decided by the user side.
#[kprobe]
pub fn count_sendmsg(_ctx: ProbeContext) -> u32 {
    let key = 0u32;
    // On the stack, as in C: a constant would go into the object's read-only data,
    // which kernels before 5.2 cannot give a program.
    let zero = core::hint::black_box(0u64);
    // Look the counter up; on the first call there is none yet, so create it at 0.
    // `get_ptr_mut` returns an Option: the lookup can fail, and Rust will not let the
    // pointer be used without saying what happens then — the NULL check the verifier
    // insists on in C.
    let count = match STATS.get_ptr_mut(key) {
        Some(count) => count,
        None => {
            // An error here means another CPU created it first: the lookup below finds it.
            let _ = STATS.insert(key, zero, u64::from(BPF_NOEXIST));
            match STATS.get_ptr_mut(key) {
                Some(count) => count,
                None => return 0,
            }
        }
    };
    // Atomic, because the probe can run on several CPUs at once.
    // SAFETY: `count` points at the map's value, which the kernel keeps for as long as
    // the program runs, and a u64 there is 8-byte aligned.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, 1) };

    // EXERCISE 44.1: add the size of this send to the map's entry 1 (key 1u32), created at
    // 0 the first time as entry 0 is above. The size is tcp_sendmsg's third argument:
    // `ctx.arg::<u64>(2)` reads it from the probed function's registers (rename `_ctx`
    // to `ctx`), and returns an Option, as it does not know how many the function has.
    // The map has room for one entry: `max_entries` in its definition must say 2.
    0
}

// The verifier proves the program never panics; a handler must exist all the same.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_trace_printk and other helpers are offered to GPL-compatible programs only; the
// loader reads the licence from this section, as it does C's `char LICENSE[]`.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
