//! Mistake 94, user side: an ordinary loader. The interesting part is the kernel's answer:
//! a packet helper called from a kprobe.

use bpflab_guest::{Lab, Outcome};

/// Runs the lesson inside the guest: the kernel refuses the program, and its answer (with
/// the verifier's log) is the lesson's result.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.verify_kprobe("wrong_helper.bpf.o", "peek_packet")
}
