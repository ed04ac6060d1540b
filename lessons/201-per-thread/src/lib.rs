//! Exercise 2.1, user side: lesson 2's counter with two sending threads, and the
//! exercise's check, which reads the map itself.

use anyhow::Context as _;
use aya::maps::{HashMap, Map};
use aya::programs::KProbe;
use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{Lab, Outcome};

/// Messages each sending thread sends, one thread after the other.
pub const SENDS: [usize; 2] = [10, 5];

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("counter.bpf.o")?;
    let program: &mut KProbe = bpf
        .program_mut("count_sendmsg")
        .context("counter.bpf.o has no function `count_sendmsg`")?
        .try_into()?;
    program.load()?;
    program.attach("tcp_sendmsg", 0)?;
    lab.note("kprobe attached to tcp_sendmsg");
    send_from_threads()?;

    let stats: HashMap<_, u32, u64> =
        HashMap::try_from(bpf.map("stats").context("no map `stats`")?)?;
    // EXERCISE 2.1: print one line per thread: walk the map with `stats.iter()`, which
    // gives Result<(key, count)> for every entry.
    lab.print(format!("tcp_sendmsg: {}", stats.get(&0, 0).unwrap_or(0)));

    check(bpf.map("stats").context("no map `stats`")?)
}

/// The workload: one thread per entry of [`SENDS`], each with a connection of its own.
pub fn send_from_threads() -> anyhow::Result<()> {
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
    Ok(())
}

/// The check of exercise 2.1, whatever the program or the printing: the map (u32 keys,
/// u64 counts) holds one count per sending thread, [`SENDS`], and nothing else.
pub fn check(map: &Map) -> anyhow::Result<Outcome> {
    let counts: HashMap<_, u32, u64> = HashMap::try_from(map)
        .context("the map must stay a hash map of __u32 keys and __u64 counts")?;
    let mut counts: Vec<u64> = counts
        .iter()
        .map(|entry| entry.map(|(_, n)| n))
        .collect::<Result<_, _>>()?;
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let expected: Vec<u64> = SENDS.iter().map(|&n| n as u64).collect();
    let total: u64 = expected.iter().sum();
    Ok(if counts == expected {
        Outcome::Passed(format!(
            "{} threads, each counted separately: {counts:?}",
            SENDS.len()
        ))
    } else if counts == [total] {
        Outcome::Failed(format!(
            "not solved yet: the map holds one count, {total}, for both threads' sends; key it \
             by the thread (EXERCISE 2.1 in counter.bpf.c)"
        ))
    } else {
        Outcome::Failed(format!(
            "not solved yet: {} threads sent {expected:?} messages, but the map holds {counts:?} \
             (is max_entries big enough for one entry per thread?)",
            SENDS.len()
        ))
    })
}
