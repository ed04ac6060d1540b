//! Exercise 5.1, solved: lesson 5's ring buffer part, with only the even-sized messages'
//! events reaching user space. The check is what any right answer does: every even size
//! sent arrives, in order, from the thread that sent it, and no odd one does.

use anyhow::Context as _;
use aya::maps::RingBuf;
use bpflab_guest::workload::{current_tid, TcpConversation};
use bpflab_guest::{Lab, Outcome};
use lesson_05_ring_buffer::attach_to_sendmsg;

/// Messages of 1 to this many bytes, all sent before the buffer is read: fewer than its
/// 4096 bytes hold (127 events), so that nothing is dropped for want of room.
const MESSAGES: u64 = 40;

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = attach_to_sendmsg(lab, "even_sizes.bpf.o", "ring_on_sendmsg")?;
    let mut ring = RingBuf::try_from(
        bpf.take_map("ring_events")
            .context("even_sizes.bpf.o has no map `ring_events`")?,
    )?;
    let mut conversation = TcpConversation::open()?;
    let sender = (std::process::id(), current_tid());
    for size in 1..=MESSAGES {
        conversation.send(size as usize)?;
    }
    conversation.close()?;
    let drained = lesson_05_ring_buffer::channel::drain_ring(&mut ring);
    let sizes = drained.sizes();
    lab.print(format!(
        "sent {MESSAGES} messages of 1 to {MESSAGES} bytes; received the events of {} \
         messages: {sizes:?}",
        sizes.len()
    ));
    let expected: Vec<u64> = (2..=MESSAGES).step_by(2).collect();
    let strangers = drained
        .events
        .iter()
        .filter(|e| e.is_none_or(|e| (e.pid, e.tid) != sender))
        .count();
    Ok(match (sizes == expected, strangers) {
        (true, 0) => Outcome::Passed(format!(
            "{MESSAGES} messages sent, the {} of even size received, in order, from the \
             sending thread",
            expected.len()
        )),
        _ => Outcome::Failed(format!(
            "received sizes {sizes:?} ({strangers} events unreadable or from another thread), \
             but the even sizes sent are {expected:?}"
        )),
    })
}
