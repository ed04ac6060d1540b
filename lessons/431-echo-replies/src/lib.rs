//! Exercise 43.1, solved: the program in `echo_replies.bpf.c`, with the exercise's own
//! workload and check (lesson 4301's).

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_4301_echo_replies::attempt(lab, "echo_replies.bpf.o")
}
