//! Exercise 2.2, solved: the exercise's user side, workload and check (lesson 202's),
//! loading this lesson's own `latency.bpf.c`, which notes only sends to port 9090.

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_202_port_filter::run(lab)
}
