//! Exercise 7.1, solved: lesson 7's stack counter attached to `tcp_sendmsg`. The workload
//! and the check are the exercise's own (lesson 701's).

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_701_who_sends::run_on(lab, "tcp_sendmsg")
}
