//! Exercise 3.1, solved: lesson 3 with the threshold at two seconds. The kernel side is
//! lesson 3's, unchanged; only the user side's threshold and the workload's lifetime
//! change.

use std::time::Duration;

use anyhow::Context as _;
use aya::maps::HashMap;
use aya::programs::KProbe;
use bpflab_guest::{Lab, Outcome};

/// The allocator's entry point has been renamed over the years; newest last.
/// `_noprof` arrived with memory allocation profiling in 6.10.
const ALLOCATORS: [&str; 2] = ["kmem_cache_alloc_node", "kmem_cache_alloc_node_noprof"];
/// The workload's threads: each one's `task_struct` comes from kmem_cache_alloc_node()
/// and lives as long as the thread.
const THREADS: usize = 3;
/// How long they live, and so how long the lesson watches.
const LIFETIME: Duration = Duration::from_millis(3600);
/// Objects younger than this are not reported.
const THRESHOLD_S: u64 = 2;
/// Map size: plenty for a quiet guest, far less memory than the original million.
const MAP_ENTRIES: u32 = 16 * 1024;

/// `struct pair` of tracex4.bpf.c.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Pair {
    val: u64,
    ip: u64,
}

// SAFETY: plain old data, the same layout as the C struct.
unsafe impl aya::Pod for Pair {}

/// Runs the lesson inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let allocator = lab.kernel_symbol(&ALLOCATORS)?;
    lab.note(format!("allocator entry point on this kernel: {allocator}"));

    lab.loader().map_max_entries("my_map", MAP_ENTRIES);
    let mut bpf = lab.load("tracex4.bpf.o")?;
    for (function, target) in [
        ("free_probe", "kmem_cache_free"),
        ("alloc_retprobe", allocator.as_str()),
    ] {
        let program: &mut KProbe = bpf
            .program_mut(function)
            .with_context(|| format!("tracex4.bpf.o has no function `{function}`"))?
            .try_into()?;
        program.load()?;
        program.attach(target, 0)?;
    }
    lab.note(format!(
        "kprobe on kmem_cache_free, kretprobe on {allocator}"
    ));

    // The workload: threads that outlive a second.
    let threads: Vec<_> = (0..THREADS)
        .map(|_| std::thread::spawn(|| std::thread::sleep(LIFETIME)))
        .collect();

    let map: HashMap<_, i64, Pair> =
        HashMap::try_from(bpf.map("my_map").context("no map `my_map`")?)?;
    let mut longest_lived = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        let now = monotonic_ns();
        // Collect first, print after: the walk should not be slowed by our own output.
        let mut old = Vec::new();
        for entry in map.iter() {
            let (addr, pair) = entry?;
            let age = now.saturating_sub(pair.val) / 1_000_000_000;
            if age >= THRESHOLD_S {
                old.push((addr as u64, age, pair.ip));
            }
        }
        // Grouped by allocation site, so objects of one kind stand together.
        let mut described = Vec::new();
        for (addr, age, ip) in old {
            let site = lab.kallsyms()?.describe(ip).unwrap_or_else(|| "?".into());
            described.push((site, addr, age, ip));
        }
        described.sort();
        longest_lived.clear();
        for (site, addr, age, ip) in described {
            lab.print(format!(
                "obj {addr:#x} is {age}sec old was allocated at ip {ip:x} ({site})"
            ));
            longest_lived.push(site);
        }
    }
    for thread in threads {
        let _ = thread.join();
    }

    // At least the workload's threads (their task_structs) must have been seen alive for
    // over two seconds. Which function the addresses resolve to differs by kernel: the code
    // that allocates a task_struct is inlined into kernel_clone on some, and older
    // kernels report the kretprobe trampoline instead of the caller for some sites.
    let old = longest_lived.len();
    Ok(if old >= THREADS {
        Outcome::Passed(format!(
            "{THREADS} threads kept alive for 3s; objects older than {THRESHOLD_S}s were found"
        ))
    } else {
        Outcome::Failed(format!(
            "{THREADS} threads kept alive for 3s, but only {old} objects older than {THRESHOLD_S}s were found"
        ))
    })
}

/// bpf_ktime_get_ns() counts CLOCK_MONOTONIC.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
