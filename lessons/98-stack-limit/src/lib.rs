//! Mistake 98, user side: an ordinary loader, which never runs as shipped. clang refuses
//! the kernel side on the host (`refused_by = "clang"` in lesson.toml), so the lesson never
//! boots; once the C is fixed, this loads it and the kernel has its say.

use bpflab_guest::{Lab, Outcome};

/// Runs the lesson inside the guest: loads the (fixed) program and reports the kernel's
/// answer.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.verify_kprobe("stack_limit.bpf.o", "print_path")
}
