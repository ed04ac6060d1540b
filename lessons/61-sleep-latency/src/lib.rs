//! Exercise 6.1, solved: a funclatency of the function behind nanosleep(2). The user side
//! (the sleeps, the histogram printed, the check) is the exercise's own (lesson 601's);
//! this lesson's sleep_latency.bpf.c fills in the two programs.

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_601_sleep_latency::run(lab)
}
