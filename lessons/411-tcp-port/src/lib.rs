//! Exercise 41.1, solved: the filter in `tcp_port.bpf.c`, with the exercise's own
//! workload and check (lesson 4101's).

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_4101_tcp_port::attempt(lab, "tcp_port.bpf.o")
}
