//! Exercise 7.1, solved: lesson 7's stack counter attached to `tcp_sendmsg`, while this
//! thread sends a few messages over loopback.

use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{Lab, Outcome};
use lesson_07_stack_traces::{count_stacks, print_stacks, stack_problems};

/// Messages sent: one send(2), so one tcp_sendmsg call, each.
const MESSAGES: u64 = 5;

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let counted = count_stacks(lab, "tcp_sendmsg", || {
        let mut conversation = TcpConversation::open()?;
        for _ in 0..MESSAGES {
            conversation.send(100)?;
        }
        conversation.close()?;
        Ok(())
    })?;
    print_stacks(lab, &counted);
    let calls: u64 = counted.stacks.iter().map(|s| s.count).sum();
    let mut problems = stack_problems(&counted, "tcp_sendmsg");
    if calls != MESSAGES {
        problems.push(format!("{MESSAGES} messages sent, {calls} calls counted"));
    }
    Ok(match problems.is_empty() {
        true => Outcome::Passed(format!(
            "{MESSAGES} messages sent, {calls} calls of tcp_sendmsg counted by stack"
        )),
        false => Outcome::Failed(problems.join("; ")),
    })
}
