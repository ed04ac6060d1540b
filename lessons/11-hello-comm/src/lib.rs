//! Exercise 1.1, solved: lesson 1's loader, attaching `hello_comm`.

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{workload, Lab, Outcome};

const PROCESSES: usize = 3;

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
    let greetings = lab.wait_for_trace(
        "Hello World!! from init, pid 1",
        PROCESSES,
        Duration::from_secs(10),
    );
    lab.keep_attached(bpf);
    Ok(match greetings.len() {
        PROCESSES => Outcome::Passed(format!(
            "{PROCESSES} processes created by init (pid 1), each greeted by name"
        )),
        n => Outcome::Failed(format!(
            "{PROCESSES} processes created, {n} greetings naming init, pid 1"
        )),
    })
}
