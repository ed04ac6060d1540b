//! Exercise 42.1, solved: the program in `udp_port.bpf.c`, with the exercise's own
//! workload and check (lesson 4201's).

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_4201_udp_port::attempt(lab, "udp_port.bpf.o")
}
