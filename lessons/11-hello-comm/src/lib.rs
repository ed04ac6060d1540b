//! Exercise 1.1, solved: lesson 1's loader, attaching `hello_comm`, judged by the
//! exercise's own check (lesson 101's), which accepts any message that names the caller.

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{workload, Lab, Outcome};
use lesson_101_who_called::{check, PROCESSES};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("hello_comm.bpf.o")?;
    let target = lab.syscall_fnname("clone")?;
    let program: &mut KProbe = bpf
        .program_mut("hello_comm")
        .context("hello_comm.bpf.o has no function `hello_comm`")?
        .try_into()?;
    program.load()?;
    program.attach(&target, 0)?;
    lab.note(format!("kprobe attached to {target}"));
    workload::clone_children(PROCESSES)?;
    let outcome = check(lab);
    lab.keep_attached(bpf);
    Ok(outcome)
}
