//! Lesson 44, user side: lesson 2's counter, run twice, once with each twin of its
//! kernel side:
//!
//! - **rust**: `counter-rs.bpf.o`, built by cargo and bpf-linker from `counter-rs/`;
//! - **c**: `counter.bpf.o`, built by clang from lesson 2's `counter.bpf.c`.
//!
//! Both name their function `count_sendmsg` and their map `stats`, so the user side is
//! the same for both: attach, send messages over loopback, compare the count with them.

use anyhow::Context as _;
use aya::maps::HashMap;
use aya::programs::KProbe;
use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{combine_parts, Lab, Outcome};

/// Rounds of messages, and how many messages per round.
const ROUNDS: usize = 3;
const MESSAGES_PER_ROUND: usize = 10;
const MESSAGE_SIZE: usize = 100;

/// Runs the twins the learner asked for (both by default): Rust first, then C.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::new();
    for (part, object) in [("rust", "counter-rs.bpf.o"), ("c", "counter.bpf.o")] {
        if lab.wants_part(part) {
            outcomes.push(count(lab, part, object)?);
        }
    }
    Ok(combine_parts(outcomes))
}

/// Attaches `object`'s `count_sendmsg` to tcp_sendmsg, sends messages and checks that
/// the `stats` map counted each.
fn count(lab: &mut Lab, part: &str, object: &str) -> anyhow::Result<Outcome> {
    lab.note(format!("part {part}: {object} counts tcp_sendmsg calls"));
    // Nothing tells the loader which language an object came from: both are ELF files
    // with a "kprobe" section, a map and a licence.
    let mut bpf = lab.load(object)?;
    let program: &mut KProbe = bpf
        .program_mut("count_sendmsg")
        .with_context(|| format!("{object} has no function `count_sendmsg`"))?
        .try_into()?;
    program.load()?;
    program.attach("tcp_sendmsg", 0)?;
    lab.note("kprobe attached to tcp_sendmsg");

    let stats: HashMap<_, u32, u64> = HashMap::try_from(
        bpf.map("stats")
            .with_context(|| format!("{object} has no map `stats`"))?,
    )?;
    let read_count = || stats.get(&0, 0).unwrap_or(0);

    // Each send is one write(2), and each write(2) on a TCP socket one tcp_sendmsg().
    let mut conversation = TcpConversation::open()?;
    let mut sent = 0;
    for _ in 0..ROUNDS {
        for _ in 0..MESSAGES_PER_ROUND {
            conversation.send(MESSAGE_SIZE)?;
            sent += 1;
        }
        lab.print(format!("{part}: tcp_sendmsg: {}", read_count()));
    }
    conversation.close()?;

    // Detached here: the next twin's count must not include this one's.
    let counted = read_count();
    drop(bpf);
    Ok(if counted == sent as u64 {
        Outcome::Passed(format!(
            "{part}: {sent} messages sent, {counted} tcp_sendmsg calls counted"
        ))
    } else {
        Outcome::Failed(format!(
            "{part}: {sent} messages sent but {counted} tcp_sendmsg calls counted"
        ))
    })
}
