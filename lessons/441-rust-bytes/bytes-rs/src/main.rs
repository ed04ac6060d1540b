// SPDX-License-Identifier: GPL-2.0
//
// Exercise 44.1, solved, kernel side in Rust: lesson 44's counter, which also adds up
// the bytes of each tcp_sendmsg(sk, msg, size) call in the map's entry 1.
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

// The map, named "stats" in the object as in the C twin: a hash map with two entries,
// key 0 holding the count and key 1 the bytes. #[map] puts it in the object's "maps"
// section, which every kernel with BPF maps can load.
#[map(name = "stats")]
static STATS: HashMap<u32, u64> = HashMap::with_max_entries(2, 0);

// #[kprobe] places the function in the "kprobe" section, as SEC("kprobe") does in C;
// which kernel function it is attached to is decided by the user side.
#[kprobe]
pub fn count_sendmsg(ctx: ProbeContext) -> u32 {
    // tcp_sendmsg(sk, msg, size): the size is the third argument. ProbeContext reads it
    // from the registers the kprobe saw (rdx on x86-64, x2 on arm64: aya-ebpf is built
    // for the guest's arch); None if the arch passed fewer arguments in registers.
    let size: u64 = ctx.arg(2).unwrap_or(0);
    add(0, 1);
    add(1, size);
    0
}

/// Adds `amount` to the map's entry `key`, creating it at 0 on first use.
#[inline(always)]
fn add(key: u32, amount: u64) {
    // On the stack, as in C: a constant would go into the object's read-only data,
    // which kernels before 5.2 cannot give a program.
    let zero = core::hint::black_box(0u64);
    let value = match STATS.get_ptr_mut(key) {
        Some(value) => value,
        None => {
            // An error here means another CPU created it first: the lookup below finds it.
            let _ = STATS.insert(key, zero, u64::from(BPF_NOEXIST));
            match STATS.get_ptr_mut(key) {
                Some(value) => value,
                None => return,
            }
        }
    };
    // Atomic, because the probe can run on several CPUs at once.
    // SAFETY: `value` points at the map's value, which the kernel keeps for as long as
    // the program runs, and a u64 there is 8-byte aligned.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(value, amount) };
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
