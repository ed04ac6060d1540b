//! The workload: three rounds of messages over loopback, each a size of its own, and
//! what a channel gave back after each.

use bpflab_guest::workload::{current_tid, TcpConversation};

use super::channel::Drained;

/// Messages sent and read one at a time: sizes 1, 2, 3.
pub const IN_STEP: u64 = 3;
/// Messages sent before anything is read, sizes following on: more than either buffer
/// holds.
pub const FLOOD: u64 = 200;

/// What came out of each round.
pub struct Rounds {
    /// One drain after each message of the first round.
    pub in_step: Vec<Drained>,
    /// The drain after the whole flood.
    pub flood: Drained,
    /// The drain after the one message sent once the buffer was empty.
    pub after: Drained,
    /// The process and thread that sent every message.
    pub sender: (u32, u32),
}

/// Sends the three rounds of messages over loopback, draining the channel with `drain`
/// where each round says.
pub fn send_rounds(mut drain: impl FnMut() -> anyhow::Result<Drained>) -> anyhow::Result<Rounds> {
    let mut conversation = TcpConversation::open()?;
    let sender = (std::process::id(), current_tid());
    let mut in_step = Vec::new();
    for size in 1..=IN_STEP {
        conversation.send(size as usize)?;
        in_step.push(drain()?);
    }
    for size in IN_STEP + 1..=IN_STEP + FLOOD {
        conversation.send(size as usize)?;
    }
    let flood = drain()?;
    conversation.send((IN_STEP + FLOOD + 1) as usize)?;
    let after = drain()?;
    conversation.close()?;
    Ok(Rounds {
        in_step,
        flood,
        after,
        sender,
    })
}
