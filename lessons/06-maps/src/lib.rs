//! Lesson 6, user side: the maps a tracing program keeps its state in, one part each.
//! Every part's program counts `tcp_sendmsg()` calls by message size, and the workload
//! sends messages of sizes it chooses, so each map's content is known exactly:
//!
//! - **array**: `array.bpf.o`, eight zeroed slots, one written by user space first;
//! - **per-cpu-array**: `per_cpu_array.bpf.o`, one copy of each slot per CPU (4.6+);
//! - **hash**: `hash.bpf.o`, 16 entries, filled past its size: new keys are refused;
//! - **lru-hash**: `lru_hash.bpf.o`, the same on an LRU hash (4.10+): old keys go instead;
//! - **pinning**: the array part's map pinned in `/sys/fs/bpf`, read through the pin after
//!   its program and object are gone;
//! - **histogram**: `histogram.bpf.o`, sizes in power-of-two buckets, printed like BCC's.

mod arrays;
mod common;
mod hashes;
mod histogram;
mod pin;

use bpflab_guest::{combine_parts, unsupported_as_outcome, Lab, Outcome};

type Part = fn(&mut Lab) -> anyhow::Result<Outcome>;

/// The parts, in the order they run.
const PARTS: [(&str, Part); 6] = [
    ("array", arrays::array),
    ("per-cpu-array", arrays::per_cpu_array),
    ("hash", hashes::hash),
    ("lru-hash", hashes::lru_hash),
    ("pinning", pin::pinning),
    ("histogram", histogram::histogram),
];

/// Runs the parts the learner asked for (all by default).
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::new();
    for (part, run_part) in PARTS {
        if !lab.wants_part(part) {
            continue;
        }
        // A map type this kernel lacks makes its part unsupported; the others still run.
        match unsupported_as_outcome(run_part(lab))? {
            Outcome::Unsupported(reason) => {
                outcomes.push(Outcome::Unsupported(format!("{part}: {reason}")))
            }
            outcome => outcomes.push(outcome),
        }
    }
    Ok(combine_parts(outcomes))
}
