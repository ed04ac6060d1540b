//! Exercise 5.1, user side: lesson 5's ring buffer part with messages of 1 to 40 bytes,
//! and the exercise's check, which looks only at what arrives: every even size sent, in
//! order, from the thread that sent it, and no odd one.

use anyhow::Context as _;
use aya::maps::RingBuf;
use bpflab_guest::workload::{current_tid, TcpConversation};
use bpflab_guest::{Lab, Outcome};
use lesson_05_ring_buffer::attach_to_sendmsg;
use lesson_05_ring_buffer::channel::{drain_ring, Drained};

/// Messages of 1 to this many bytes, all sent before the buffer is read: fewer than its
/// 4096 bytes hold (127 events), so that none is dropped for want of room.
pub const MESSAGES: u64 = 40;

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    run_object(lab, "ring_buffer.bpf.o")
}

/// Loads `object`, whose `ring_on_sendmsg` goes on tcp_sendmsg and whose ring buffer is
/// `ring_events`, sends the messages and checks what arrived.
pub fn run_object(lab: &mut Lab, object: &str) -> anyhow::Result<Outcome> {
    let mut bpf = attach_to_sendmsg(lab, object, "ring_on_sendmsg")?;
    let mut ring = RingBuf::try_from(
        bpf.take_map("ring_events")
            .with_context(|| format!("{object} has no map `ring_events`"))?,
    )?;
    let mut conversation = TcpConversation::open()?;
    let sender = (std::process::id(), current_tid());
    for size in 1..=MESSAGES {
        conversation.send(size as usize)?;
    }
    conversation.close()?;
    let drained = drain_ring(&mut ring);
    let sizes = drained.sizes();
    lab.print(format!(
        "sent {MESSAGES} messages of 1 to {MESSAGES} bytes; received the events of {} \
         messages: {sizes:?}",
        sizes.len()
    ));
    Ok(check(&drained, sender))
}

/// The check of exercise 5.1, whatever the program does to get there: the events of the
/// even sizes sent, in order, all from `sender` (pid, tid), and nothing else.
pub fn check(drained: &Drained, sender: (u32, u32)) -> Outcome {
    let sizes = drained.sizes();
    let expected: Vec<u64> = (2..=MESSAGES).step_by(2).collect();
    let strangers = drained
        .events
        .iter()
        .filter(|e| e.is_none_or(|e| (e.pid, e.tid) != sender))
        .count();
    let all: Vec<u64> = (1..=MESSAGES).collect();
    match (sizes == expected, strangers) {
        (true, 0) => Outcome::Passed(format!(
            "{MESSAGES} messages sent, the {} of even size received, in order, from the \
             sending thread",
            expected.len()
        )),
        _ if sizes == all => Outcome::Failed(format!(
            "not solved yet: the events of all {MESSAGES} messages arrived, odd sizes too; send \
             only those of even size (EXERCISE 5.1 in ring_buffer.bpf.c)"
        )),
        _ => Outcome::Failed(format!(
            "not solved yet: received the sizes {sizes:?} ({strangers} events unreadable or \
             from another thread), but the even sizes sent are {expected:?}"
        )),
    }
}
