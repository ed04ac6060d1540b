//! Exercise 7.1, user side: lesson 7's stack counter while this thread sends a few
//! messages over loopback, and the exercise's check: one call per message, every stack
//! starting in tcp_sendmsg.

use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{Lab, Outcome};
use lesson_07_stack_traces::{count_stacks, print_stacks, stack_problems, Counted};

/// Messages sent: one send(2), so one tcp_sendmsg call, each.
pub const MESSAGES: u64 = 5;

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    // EXERCISE 7.1: count the stacks of the kernel function that sends TCP data (lessons 2
    // and 5 probe it), not those of the slab allocator lesson 7 watches, named here as
    // it is called before 6.10 and since.
    let target = lab.kernel_symbol(&["kmem_cache_alloc_node", "kmem_cache_alloc_node_noprof"])?;
    run_on(lab, &target)
}

/// Counts by stack the calls of `function` while the messages are sent, prints the
/// stacks and checks them.
pub fn run_on(lab: &mut Lab, function: &str) -> anyhow::Result<Outcome> {
    let counted = count_stacks(lab, function, || {
        let mut conversation = TcpConversation::open()?;
        for _ in 0..MESSAGES {
            conversation.send(100)?;
        }
        conversation.close()?;
        Ok(())
    })?;
    print_stacks(lab, &counted);
    Ok(check(&counted))
}

/// The check of exercise 7.1, however the stacks were counted: exactly one call per
/// message, and every stack a real one that starts in tcp_sendmsg.
pub fn check(counted: &Counted) -> Outcome {
    let calls: u64 = counted.stacks.iter().map(|s| s.count).sum();
    let elsewhere = counted
        .stacks
        .iter()
        .find_map(|s| s.function(0).filter(|&f| f != "tcp_sendmsg"));
    if let Some(function) = elsewhere {
        return Outcome::Failed(format!(
            "not solved yet: the stacks start in {function}, not in tcp_sendmsg (EXERCISE 7.1 \
             in src/lib.rs)"
        ));
    }
    let mut problems = stack_problems(counted, "tcp_sendmsg");
    if calls != MESSAGES {
        problems.push(format!("{MESSAGES} messages sent, {calls} calls counted"));
    }
    match problems.is_empty() {
        true => Outcome::Passed(format!(
            "{MESSAGES} messages sent, {calls} calls of tcp_sendmsg counted by stack"
        )),
        false => Outcome::Failed(format!("not solved yet: {}", problems.join("; "))),
    }
}
