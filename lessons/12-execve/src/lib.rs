//! Exercise 1.2, solved: lesson 1's program on the function behind execve(2), judged by
//! the exercise's own workload and check (lesson 102's).

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{Lab, Outcome};
use lesson_102_execve::workload_and_check;

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("hello.bpf.o")?;
    let target = lab.syscall_fnname("execve")?;
    let program: &mut KProbe = bpf
        .program_mut("hello")
        .context("hello.bpf.o has no function `hello`")?
        .try_into()?;
    program.load()?;
    program.attach(&target, 0)?;
    lab.note(format!("kprobe attached to {target}"));
    let outcome = workload_and_check(lab)?;
    lab.keep_attached(bpf);
    Ok(outcome)
}
