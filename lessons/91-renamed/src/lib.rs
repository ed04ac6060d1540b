//! Mistake 91, user side: asks the kernel for the old names only, as an old tutorial
//! would. On 5.10 and later none exists, and the lesson is reported as unsupported on
//! this kernel, with the names it tried — not as failed, and never as passed.

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{workload, Lab, Outcome};

/// Runs the lesson inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    // The fix is to add "kernel_clone" to this list (or probe a tracepoint, whose names
    // are kept stable across versions).
    let target = lab.kernel_symbol(&["_do_fork", "do_fork"])?;
    let mut bpf = lab.load("renamed.bpf.o")?;
    let program: &mut KProbe = bpf
        .program_mut("on_fork")
        .context("renamed.bpf.o has no function `on_fork`")?
        .try_into()?;
    program.load()?;
    program.attach(&target, 0)?;
    workload::clone_children(1)?;
    // On a kernel old enough to have it, the probe must really fire for the fork.
    let seen = lab.wait_for_trace("a process is forking", 1, Duration::from_secs(10));
    Ok(match seen.len() {
        0 => Outcome::Failed(format!(
            "a kprobe on {target} saw no fork: the trace has no \"a process is forking\""
        )),
        _ => Outcome::Passed(format!(
            "{target} exists on this kernel: it is older than 5.10"
        )),
    })
}
