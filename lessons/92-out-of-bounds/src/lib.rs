//! Mistake 92, user side: an ordinary loader. The interesting part is the kernel's answer:
//! an index into a map value that nothing bounds.

use bpflab_guest::{Lab, Outcome};

/// Runs the lesson inside the guest: the kernel refuses the program, and its answer (with
/// the verifier's log) is the lesson's result.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.verify_kprobe("out_of_bounds.bpf.o", "count_sizes")
}
