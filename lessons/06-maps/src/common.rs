//! What every part does the same way: attach to tcp_sendmsg, send messages of chosen
//! sizes.

use anyhow::Context as _;
use aya::programs::KProbe;
use aya::Ebpf;
use bpflab_guest::workload::TcpConversation;
use bpflab_guest::Lab;

/// Loads `object` and attaches its `function` to tcp_sendmsg, whose third argument is
/// the message's size.
pub fn attach_to_sendmsg(lab: &mut Lab, object: &str, function: &str) -> anyhow::Result<Ebpf> {
    let mut bpf = lab.load(object)?;
    let program: &mut KProbe = bpf
        .program_mut(function)
        .with_context(|| format!("{object} has no function `{function}`"))?
        .try_into()?;
    program.load()?;
    program.attach("tcp_sendmsg", 0)?;
    lab.note("kprobe attached to tcp_sendmsg");
    Ok(bpf)
}

/// Sends one message of each size, in order, with one send(2) (one tcp_sendmsg call)
/// each, over a fresh loopback connection.
pub fn send_sizes(sizes: &[u64]) -> anyhow::Result<()> {
    let mut conversation = TcpConversation::open()?;
    for &size in sizes {
        conversation.send(size as usize)?;
    }
    conversation.close()?;
    Ok(())
}
