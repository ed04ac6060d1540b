//! Mistake 90, user side: an ordinary loader. The interesting part is the error it gets.

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{Lab, Outcome};

/// Runs the lesson inside the guest: loading fails, and the failure (with the verifier's
/// log) is the lesson's result.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("nullcheck.bpf.o")?;
    let program: &mut KProbe = bpf
        .program_mut("count_sendmsg")
        .context("nullcheck.bpf.o has no function `count_sendmsg`")?
        .try_into()?;
    // The verifier runs here, and says no. The error carries its whole log.
    program
        .load()
        .context("the verifier rejected `count_sendmsg`")?;
    program.attach("tcp_sendmsg", 0)?;
    Ok(Outcome::Passed(
        "loaded — the NULL check must be there after all".into(),
    ))
}
