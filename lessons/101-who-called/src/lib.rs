//! Exercise 1.1, user side: lesson 1's loader, and the exercise's check. The change to
//! make is in `hello.bpf.c`; nothing here needs one.

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{trace_message, workload, Lab, Outcome};

/// How many processes the workload creates: one greeting each.
pub const PROCESSES: usize = 3;

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("hello.bpf.o")?;
    let target = lab.syscall_fnname("clone")?;
    let program: &mut KProbe = bpf
        .program_mut("hello")
        .context("hello.bpf.o has no function `hello`")?
        .try_into()?;
    program.load()?;
    program.attach(&target, 0)?;
    lab.note(format!("kprobe attached to {target}"));
    workload::clone_children(PROCESSES)?;
    let outcome = check(lab);
    lab.keep_attached(bpf);
    Ok(outcome)
}

/// The check of exercise 1.1, for any message: the agent (`init`, pid 1) created
/// [`PROCESSES`] processes, and each greeting's message — the part the program printed,
/// whatever its wording — names the caller and its pid.
pub fn check(lab: &Lab) -> Outcome {
    // Every line of this lesson's trace is a greeting: only this program prints.
    let greetings = lab.wait_for_trace("", PROCESSES, Duration::from_secs(10));
    if greetings.len() != PROCESSES {
        return Outcome::Failed(format!(
            "not solved yet: {PROCESSES} processes created, {} greetings (one each is \
             expected: did the program load, and does it still print?)",
            greetings.len()
        ));
    }
    let names_caller = |line: &String| {
        let message = trace_message(line);
        let words: Vec<&str> = message
            .split(|c: char| !c.is_ascii_alphanumeric())
            .collect();
        words.contains(&"init") && words.contains(&"1")
    };
    match greetings.iter().find(|line| !names_caller(line)) {
        None => Outcome::Passed(format!(
            "{PROCESSES} processes created by init (pid 1), each greeted by name"
        )),
        Some(line) => Outcome::Failed(format!(
            "not solved yet: the greeting {:?} does not name its caller: the processes \
             were created by init, pid 1 (the bpflab agent); see EXERCISE 1.1 in hello.bpf.c",
            trace_message(line).trim_end()
        )),
    }
}
