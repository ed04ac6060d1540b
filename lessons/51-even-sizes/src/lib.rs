//! Exercise 5.1, solved: lesson 5's ring buffer part, with only the even-sized messages'
//! events reaching user space. The workload and the check are the exercise's own
//! (lesson 501's).

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_501_even_sizes::run_object(lab, "even_sizes.bpf.o")
}
