//! Exercise 2.1, solved: two threads send different numbers of messages; the map counts
//! each thread's calls separately.

use anyhow::Context as _;
use aya::maps::HashMap;
use aya::programs::KProbe;
use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{Lab, Outcome};

/// Messages each sending thread sends.
const SENDS: [usize; 2] = [10, 5];

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

    // One sending thread per entry of SENDS, one after the other.
    for count in SENDS {
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut conversation = TcpConversation::open()?;
            for _ in 0..count {
                conversation.send(100)?;
            }
            conversation.close()?;
            Ok(())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("a sending thread panicked"))??;
    }

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
    let expected: Vec<u64> = SENDS.iter().map(|&n| n as u64).collect();
    Ok(if counts == expected {
        Outcome::Passed(format!(
            "{} threads, each counted separately: {counts:?}",
            SENDS.len()
        ))
    } else {
        Outcome::Failed(format!(
            "expected per-thread counts {expected:?}, got {counts:?}"
        ))
    })
}
