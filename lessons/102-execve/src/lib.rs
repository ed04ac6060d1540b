//! Exercise 1.2, user side: lesson 1's loader, a workload that both clones and execs, and
//! the exercise's check. Change the attach target where it says EXERCISE 1.2.

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{workload, Lab, Outcome};

/// Processes the workload creates that call nothing else.
pub const PLAIN: usize = 2;
/// Processes the workload creates that then call execve(2).
pub const EXECS: usize = 3;

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("hello.bpf.o")?;

    // EXERCISE 1.2: attach the program to the kernel function behind execve(2) instead.
    // `syscall_fnname` gives the name this kernel uses for any system call
    // (`__x64_sys_…`, `__arm64_sys_…` or plain `sys_…`).
    let target = lab.syscall_fnname("clone")?;

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

/// The workload and the check of exercise 1.2, whatever the program is attached to: the
/// workload creates [`PLAIN`] processes and [`EXECS`] more that call execve(2), and the
/// greetings must be one per execve and none for a clone.
pub fn workload_and_check(lab: &Lab) -> anyhow::Result<Outcome> {
    workload::clone_children(PLAIN)?;
    workload::exec_children(EXECS)?;
    // No long wait for greetings that will never come: the right answer's arrive within
    // a second or two even under emulation; then a moment more, for any extra ones.
    lab.wait_for_trace("", EXECS, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(300));
    let greetings = lab.trace_lines().len();
    let created = PLAIN + EXECS;
    Ok(match greetings {
        n if n == EXECS => Outcome::Passed(format!(
            "{created} processes created, {EXECS} of them called execve: {EXECS} greetings"
        )),
        n if n == created => Outcome::Failed(format!(
            "not solved yet: {n} greetings, one per process created: the program still \
             greets clone(2), not execve(2); see EXERCISE 1.2 in src/lib.rs"
        )),
        n => Outcome::Failed(format!(
            "not solved yet: {created} processes created, {EXECS} of them called execve, \
             but {n} greetings: one per execve is expected"
        )),
    })
}
