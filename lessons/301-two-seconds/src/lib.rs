//! Exercise 3.1, user side: lesson 3 run with settings of its own, and the exercise's
//! check. Change the settings where it says EXERCISE 3.1.

use std::time::Duration;

use bpflab_guest::{Lab, Outcome};
use lesson_03_tracex4::{walk, Report, Settings, THREADS};

// EXERCISE 3.1: which objects count as old is not the kernel side's decision (it records
// every allocation, with its time): user space decides, when it walks the map.
// - `threshold_s`: objects younger than this are not printed;
// - `walks`: how many times the map is walked, once a second;
// - `lifetime`: how long the workload's threads (and their task_structs) live. An object
//   is seen at a walk only if it is still alive then, and old enough.
const SETTINGS: Settings = Settings {
    threshold_s: 1,
    walks: 2,
    lifetime: Duration::from_millis(2600),
};

/// Objects younger than this must not be reported.
pub const THRESHOLD_S: u64 = 2;

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    Ok(check(walk(lab, &SETTINGS)?))
}

/// The check of exercise 3.1, whatever the settings: no object younger than
/// [`THRESHOLD_S`] was printed, and the last walk of the map printed at least one
/// object per workload thread.
pub fn check(report: Report) -> Outcome {
    if let Some(young) = report
        .ages
        .iter()
        .copied()
        .filter(|&a| a < THRESHOLD_S)
        .max()
    {
        return Outcome::Failed(format!(
            "not solved yet: objects {young}s old were reported; report only those of \
             {THRESHOLD_S}s or more (EXERCISE 3.1 in src/lib.rs)"
        ));
    }
    if report.last_walk < THREADS {
        return Outcome::Failed(format!(
            "not solved yet: the last walk of the map found {} objects of {THRESHOLD_S}s or \
             more, fewer than the workload's {THREADS} threads: do they live that long, and \
             is the map walked late enough?",
            report.last_walk
        ));
    }
    // Lesson 3's own verdict, by the same settings, and its reason.
    report.outcome
}
