//! Exercise 3.1, solved: lesson 3 with a two-second threshold. The kernel side is
//! lesson 3's `tracex4.bpf.c`, unchanged, and so is the user side: what counts as "old"
//! is user space's decision, made in lesson 3's `Settings`. Judged by the exercise's own
//! check (lesson 301's).

use std::time::Duration;

use bpflab_guest::{Lab, Outcome};
use lesson_03_tracex4::{walk, Settings};

/// Objects older than two seconds; threads that live long enough to be seen; one more
/// walk of the map.
const TWO_SECONDS: Settings = Settings {
    threshold_s: 2,
    walks: 3,
    lifetime: Duration::from_millis(3600),
};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    Ok(lesson_301_two_seconds::check(walk(lab, &TWO_SECONDS)?))
}
