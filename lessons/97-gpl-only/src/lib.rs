//! Mistake 97, user side: an ordinary loader. The interesting part is the kernel's answer:
//! a GPL-only helper under a proprietary licence.

use bpflab_guest::{Lab, Outcome};

/// Runs the lesson inside the guest: the kernel refuses the program, and its answer (with
/// the verifier's log) is the lesson's result.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.verify_kprobe("gpl_only.bpf.o", "hello")
}
