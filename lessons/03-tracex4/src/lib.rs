//! Lesson 3, user side: tracex4_user.c, with aya.
//!
//! Load `tracex4.bpf.o` (its map shrunk to fit the guest), attach a kprobe to
//! `kmem_cache_free` and a kretprobe to the slab allocator, then once a second walk the
//! map and print every object older than one second — and, unlike the original, which
//! kernel function allocated it.

use std::time::Duration;

use anyhow::Context as _;
use aya::maps::HashMap;
use aya::programs::KProbe;
use bpflab_guest::{Lab, Outcome};

/// The allocator's entry point has been renamed over the years; the first this kernel has
/// is probed. `_noprof` arrived with memory allocation profiling in 6.10. Older kernels
/// built without CONFIG_NUMA (4.4, for one) have no `kmem_cache_alloc_node` function: there
/// it is an inline wrapper of `kmem_cache_alloc`, which then sees the same allocations.
pub const ALLOCATORS: [&str; 3] = [
    "kmem_cache_alloc_node",
    "kmem_cache_alloc_node_noprof",
    "kmem_cache_alloc",
];
/// The workload's threads: each one's `task_struct` comes from kmem_cache_alloc_node()
/// and lives as long as the thread.
pub const THREADS: usize = 3;

/// What the user side decides (the kernel side records every allocation either way).
pub struct Settings {
    /// Objects younger than this many seconds are not reported.
    pub threshold_s: u64,
    /// How many times the map is walked, once a second.
    pub walks: u32,
    /// How long the workload's threads live (longer than the threshold, to be seen).
    pub lifetime: Duration,
}

/// The original's settings: objects older than a second.
pub const ONE_SECOND: Settings = Settings {
    threshold_s: 1,
    walks: 2,
    lifetime: Duration::from_millis(2600),
};
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
    run_with(lab, &ONE_SECOND)
}

/// Runs the lesson with other settings (exercise 3.1 does).
pub fn run_with(lab: &mut Lab, settings: &Settings) -> anyhow::Result<Outcome> {
    Ok(walk(lab, settings)?.outcome)
}

/// What a run reported, for a check of its own (exercise 3.1's).
// Read by that check, not by lesson 3: in the agent, which compiles this file in as a
// module of its own too, nothing reads the fields.
#[allow(dead_code)]
pub struct Report {
    /// The lesson's own verdict, by `settings`.
    pub outcome: Outcome,
    /// The age, in seconds, of every object printed, in every walk of the map.
    pub ages: Vec<u64>,
    /// How many objects the last walk printed.
    pub last_walk: usize,
}

/// Runs the lesson with `settings`, and says what it printed.
pub fn walk(lab: &mut Lab, settings: &Settings) -> anyhow::Result<Report> {
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

    // Call sites are named from the kernel's symbol table. Reading it takes a moment under
    // emulation: do it now, not inside the timed walks below.
    lab.kallsyms()?;

    // The workload: threads that outlive a second.
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let lifetime = settings.lifetime;
            std::thread::spawn(move || std::thread::sleep(lifetime))
        })
        .collect();

    let map: HashMap<_, i64, Pair> =
        HashMap::try_from(bpf.map("my_map").context("no map `my_map`")?)?;
    let mut longest_lived = Vec::new();
    let mut ages = Vec::new();
    for _ in 0..settings.walks {
        std::thread::sleep(Duration::from_secs(1));
        let now = monotonic_ns();
        // Collect first, print after: the walk should not be slowed by our own output.
        let mut old = Vec::new();
        for entry in map.iter() {
            let (addr, pair) = entry?;
            let age = now.saturating_sub(pair.val) / 1_000_000_000;
            if age >= settings.threshold_s {
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
            ages.push(age);
        }
    }
    for thread in threads {
        let _ = thread.join();
    }

    // At least the workload's threads (their task_structs) must have been seen alive for
    // over a second. Which function the addresses resolve to differs by kernel: the code
    // that allocates a task_struct is inlined into kernel_clone on some, and older
    // kernels report the kretprobe trampoline instead of the caller for some sites.
    let old = longest_lived.len();
    // Where the kernel gives a kretprobe no caller's address (no frame pointer to read the
    // return address through, and registers that still point into the kretprobe
    // trampoline, as on 4.4), the site is the trampoline: say so rather than pass it off
    // as who allocated the object.
    let unknown = longest_lived
        .iter()
        .filter(|site| site.contains("kretprobe_trampoline") || site.contains("rethook_trampoline"))
        .count();
    if unknown > 0 {
        lab.note(format!(
            "{unknown} of {old} allocation sites are the kretprobe trampoline: on this kernel a \
             kretprobe's registers do not say who called {allocator}"
        ));
    }
    let unknown = match unknown {
        0 => String::new(),
        n => format!(" ({n} without their allocation site)"),
    };
    let outcome = if old >= THREADS {
        Outcome::Passed(format!(
            "{THREADS} threads kept alive for {}s; objects older than {}s were found{unknown}",
            settings.lifetime.as_secs(),
            settings.threshold_s
        ))
    } else {
        Outcome::Failed(format!(
            "{THREADS} threads kept alive for {}s, but only {old} objects older than {}s were found",
            settings.lifetime.as_secs(),
            settings.threshold_s
        ))
    };
    Ok(Report {
        outcome,
        ages,
        last_walk: old,
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
