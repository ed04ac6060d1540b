//! Lesson 1, user side: load `hello.bpf.o`, attach it to the kernel function behind
//! clone(2), create a few processes and watch one "Hello World!!" appear for each.
//!
//! This is what BCC's `hello_world.py` does with `BPF(text=...)`,
//! `attach_kprobe(event=b.get_syscall_fnname("clone"), fn_name="hello")` and
//! `trace_print()`, written with aya.

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{workload, Lab, Outcome};

/// How many processes the workload creates. Each must produce exactly one greeting.
const PROCESSES: usize = 3;

/// Runs the lesson inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    // Load the object clang built from hello.bpf.c.
    let mut bpf = lab.load("hello.bpf.o")?;

    // The function behind clone(2) has changed names: `sys_clone` until 4.17, then
    // per-arch wrappers `__x64_sys_clone` / `__arm64_sys_clone`. Ask this kernel.
    let target = lab.syscall_fnname("clone")?;

    // Hand the bytecode to the kernel (the verifier runs here), then attach it.
    let program: &mut KProbe = bpf
        .program_mut("hello")
        .context("hello.bpf.o has no function `hello`")?
        .try_into()?;
    program.load()?;
    program.attach(&target, 0)?;
    lab.note(format!("kprobe attached to {target}"));

    // Create some processes. In the article you type `date`, `ls`, `pwd` in another
    // terminal; here the guest does it (`--shell` lets you type them yourself).
    workload::clone_children(PROCESSES)?;

    // Every line of the trace pipe is already streaming to your terminal; count ours.
    let greetings = lab.wait_for_trace("Hello World!!", PROCESSES, Duration::from_secs(10));

    // With `--shell`, the program stays attached while you type commands.
    lab.keep_attached(bpf);
    Ok(if greetings.len() == PROCESSES {
        Outcome::Passed(format!(
            "{PROCESSES} processes created, {PROCESSES} greetings"
        ))
    } else {
        Outcome::Failed(format!(
            "{PROCESSES} processes created but {} greetings seen",
            greetings.len()
        ))
    })
}
