//! Exercise 6.1, user side: a funclatency of the function behind nanosleep(2). The thread
//! sleeps for times it chooses; the kernel side (to be written) times each call from
//! entry to return, and the exercise's check judges the histogram it fills.
//!
//! Each time lies between the time asked for (a sleep never ends early) and the time
//! user space measured around the system call (which holds the kernel's inside it), so
//! the histogram is checked against both: for every bucket, no more calls at or below it
//! than asked for that little, and no fewer than user space saw take that little.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use aya::maps::Array;
use aya::programs::KProbe;
use bpflab_guest::histogram::{log2_bucket, log2_lines};
use bpflab_guest::workload::current_tid;
use bpflab_guest::{Lab, Outcome};

/// The sleeps: how many of each length, in µs.
const SLEEPS: [(u64, usize); 3] = [(1000, 4), (4000, 4), (16000, 2)];
/// Buckets in `usecs_log2`.
const BUCKETS: u32 = 64;

/// Runs the exercise (or, through lesson 61, its solution) inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let target = lab.syscall_fnname("nanosleep")?;
    let mut bpf = lab.load("sleep_latency.bpf.o")?;
    for function in ["sleep_enter", "sleep_return"] {
        let program: &mut KProbe = bpf
            .program_mut(function)
            .with_context(|| format!("sleep_latency.bpf.o has no function `{function}`"))?
            .try_into()?;
        program.load()?;
        program.attach(&target, 0)?;
    }
    lab.note(format!("kprobe and kretprobe attached to {target}"));
    let mut watched: Array<_, u64> =
        Array::try_from(bpf.map_mut("watched").context("no map `watched`")?)?;
    watched.set(0, u64::from(current_tid()), 0)?;
    let mut asked = Vec::new();
    let mut measured = Vec::new();
    for (usecs, n) in SLEEPS {
        for _ in 0..n {
            measured.push(nanosleep(Duration::from_micros(usecs))?);
            asked.push(usecs);
        }
    }
    watched.set(0, 0, 0)?;
    let histogram: Array<_, u64> =
        Array::try_from(bpf.map("usecs_log2").context("no map `usecs_log2`")?)?;
    let counts: Vec<u64> = (0..BUCKETS)
        .map(|b| histogram.get(&b, 0))
        .collect::<Result<_, _>>()?;
    let sleeps: Vec<String> = SLEEPS.iter().map(|(us, n)| format!("{n}×{us}")).collect();
    lab.print(format!(
        "slept {} times: {} µs",
        asked.len(),
        sleeps.join(", ")
    ));
    for line in log2_lines(&counts, "usecs") {
        lab.print(line);
    }
    Ok(judge(&counts, &asked, &measured))
}

/// Sleeps with the nanosleep system call itself (not libc's, which may use another) and
/// returns how many µs it took, seen from here.
fn nanosleep(length: Duration) -> anyhow::Result<u64> {
    let ts = libc::timespec {
        tv_sec: length.as_secs() as _,
        tv_nsec: length.subsec_nanos() as _,
    };
    let start = Instant::now();
    // SAFETY: a valid timespec, and no remainder asked for.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_nanosleep,
            &ts as *const libc::timespec,
            std::ptr::null_mut::<libc::timespec>(),
        )
    };
    let took = start.elapsed().as_micros() as u64;
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("nanosleep(2)");
    }
    Ok(took)
}

/// For every bucket, the number of calls at or below it.
fn cumulative(counts: &[u64]) -> Vec<u64> {
    counts
        .iter()
        .scan(0, |sum, &c| {
            *sum += c;
            Some(*sum)
        })
        .collect()
}

fn buckets_of(times_us: &[u64]) -> Vec<u64> {
    let mut counts = vec![0; BUCKETS as usize];
    for &t in times_us {
        counts[log2_bucket(t)] += 1;
    }
    counts
}

/// The check of exercise 6.1, whatever the program: `counts` (the histogram, bucket by
/// bucket) holds each sleep once, none below the time it `asked` for, none above the time
/// user space `measured` (both in µs, sleep by sleep).
pub fn judge(counts: &[u64], asked: &[u64], measured: &[u64]) -> Outcome {
    let total: u64 = counts.iter().sum();
    let (kernel, lowest, highest) = (
        cumulative(counts),
        cumulative(&buckets_of(asked)),
        cumulative(&buckets_of(measured)),
    );
    if total == 0 {
        return Outcome::Failed(format!(
            "not solved yet: {} sleeps, and the histogram is empty (EXERCISE 6.1 in \
             sleep_latency.bpf.c)",
            asked.len()
        ));
    }
    if total != asked.len() as u64 {
        return Outcome::Failed(format!(
            "not solved yet: {} sleeps, but {total} timed",
            asked.len()
        ));
    }
    let wrong = (0..kernel.len()).find(|&b| kernel[b] > lowest[b] || kernel[b] < highest[b]);
    match wrong {
        None => Outcome::Passed(format!(
            "{total} sleeps timed, each between the time it asked for and the time user space \
             measured"
        )),
        Some(b) => Outcome::Failed(format!(
            "not solved yet: {} calls took under {} µs in the kernel, but {} asked for less \
             and user space saw {} take less",
            kernel[b],
            1u64 << (b + 1),
            lowest[b],
            highest[b]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_between_the_bounds_passes_and_one_outside_fails() {
        let asked = [50, 50, 1000];
        let measured = [80, 300, 1500];
        // Kernel times 60, 200, 1200 µs: buckets 5, 7, 10.
        assert!(matches!(
            judge(&buckets_of(&[60, 200, 1200]), &asked, &measured),
            Outcome::Passed(_)
        ));
        // A sleep shorter than asked (20 µs for 50) is not a sleep that happened.
        assert!(matches!(
            judge(&buckets_of(&[20, 200, 1200]), &asked, &measured),
            Outcome::Failed(_)
        ));
        // Longer in the kernel than user space saw it: not possible either.
        assert!(matches!(
            judge(&buckets_of(&[60, 200, 4000]), &asked, &measured),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            judge(&buckets_of(&[60, 200]), &asked, &measured),
            Outcome::Failed(_)
        ));
    }
}
