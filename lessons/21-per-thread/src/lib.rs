//! Exercise 2.1, solved: two threads send different numbers of messages; the map counts
//! each thread's calls separately. The workload and the check are the exercise's own
//! (lesson 201's).

use anyhow::Context as _;
use aya::maps::HashMap;
use aya::programs::KProbe;
use bpflab_guest::{Lab, Outcome};
use lesson_201_per_thread::{check, send_from_threads};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("per_thread.bpf.o")?;
    let program: &mut KProbe = bpf
        .program_mut("count_per_thread")
        .context("per_thread.bpf.o has no function `count_per_thread`")?
        .try_into()?;
    program.load()?;
    program.attach("tcp_sendmsg", 0)?;
    lab.note("kprobe attached to tcp_sendmsg, counting per thread");
    send_from_threads()?;

    let sends: HashMap<_, u32, u64> =
        HashMap::try_from(bpf.map("sends").context("no map `sends`")?)?;
    let mut counts: Vec<u64> = sends
        .iter()
        .map(|entry| entry.map(|(_, n)| n))
        .collect::<Result<_, _>>()?;
    counts.sort_unstable_by(|a, b| b.cmp(a));
    for (i, n) in counts.iter().enumerate() {
        lab.print(format!("thread {}: {n} tcp_sendmsg calls", i + 1));
    }
    check(bpf.map("sends").context("no map `sends`")?)
}
