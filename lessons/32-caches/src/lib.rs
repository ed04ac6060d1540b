//! Exercise 3.2, solved: the exercise's user side, workload and check (lesson 302's),
//! loading this lesson's own `caches.bpf.c`.

use bpflab_guest::{Lab, Outcome};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lesson_302_caches::run(lab)
}
