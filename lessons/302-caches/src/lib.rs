//! Exercise 3.2, user side: lesson 3's probes and a third one on the allocator's entry,
//! a workload, and the exercise's check, which reads the `caches` map. The change to make
//! is in `caches.bpf.c`; nothing here needs one.

use std::time::Duration;

use anyhow::Context as _;
use aya::maps::{HashMap, Map};
use aya::programs::KProbe;
use bpflab_guest::{Lab, Outcome};
use lesson_03_tracex4::{ALLOCATORS, THREADS};

/// Runs the exercise (and its solution, lesson 32, with the solution's `caches.bpf.c`)
/// inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let allocator = lab.kernel_symbol(&ALLOCATORS)?;
    lab.note(format!("allocator entry point on this kernel: {allocator}"));
    // As in lesson 3: a map of a million entries does not fit the guest.
    lab.loader().map_max_entries("my_map", 16 * 1024);
    let mut bpf = lab.load("caches.bpf.o")?;
    for (function, target) in [
        ("free_probe", "kmem_cache_free"),
        ("alloc_retprobe", allocator.as_str()),
        ("alloc_entry", allocator.as_str()),
    ] {
        let program: &mut KProbe = bpf
            .program_mut(function)
            .with_context(|| format!("caches.bpf.o has no function `{function}`"))?
            .try_into()?;
        program.load()?;
        program.attach(target, 0)?;
    }
    lab.note(format!(
        "kprobe on kmem_cache_free, kretprobe and kprobe on {allocator}"
    ));

    // The workload: threads, each of whose task_struct comes from the same cache.
    let threads: Vec<_> = (0..THREADS)
        .map(|_| std::thread::spawn(|| std::thread::sleep(Duration::from_millis(200))))
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    check(
        lab,
        bpf.map("caches")
            .context("caches.bpf.o has no map `caches`")?,
    )
}

/// The check of exercise 3.2, whatever the program: the map holds counts under kernel
/// addresses (cache pointers), and some cache handed out at least one object per
/// workload thread (their task_structs all come from one cache). Prints the busiest.
pub fn check(lab: &Lab, map: &Map) -> anyhow::Result<Outcome> {
    let caches: HashMap<_, u64, u64> = HashMap::try_from(map)
        .context("the map `caches` must stay a hash map of __u64 keys and __u64 counts")?;
    let mut counts: Vec<(u64, u64)> = caches.iter().collect::<Result<_, _>>()?;
    counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    lab.print(format!(
        "{total} allocations from {} caches; the busiest:",
        counts.len()
    ));
    for (cache, n) in counts.iter().take(3) {
        lab.print(format!("  cache {cache:#x}: {n} objects"));
    }
    // Kernel addresses are in the top half of the address space on x86-64 and arm64.
    let kernel_address = |a: u64| a >= 0xffff_0000_0000_0000;
    Ok(match counts.as_slice() {
        [] => Outcome::Failed(
            "not solved yet: the map `caches` is empty: count each call of the allocator \
             there, in alloc_entry (EXERCISE 3.2 in caches.bpf.c)"
                .into(),
        ),
        _ if !counts.iter().all(|(c, _)| kernel_address(*c)) => {
            let (bad, _) = counts
                .iter()
                .find(|(c, _)| !kernel_address(*c))
                .expect("one");
            Outcome::Failed(format!(
                "not solved yet: {bad:#x} is no kernel address, so not a cache: is the key \
                 the allocator's first argument, read when it is entered?"
            ))
        }
        [(_, busiest), ..] if *busiest < THREADS as u64 => Outcome::Failed(format!(
            "not solved yet: {THREADS} threads were created, each with a task_struct from the \
             same cache, but no cache counted more than {busiest}"
        )),
        _ => Outcome::Passed(format!(
            "{THREADS} threads created; allocations counted per cache, one with at least \
             {THREADS}"
        )),
    })
}
