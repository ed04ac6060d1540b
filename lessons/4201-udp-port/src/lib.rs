//! Exercise 42.1, user side: lesson 42's veth pair and workload with the program in
//! `drop.bpf.c`, and the exercise's check, which compares what arrived with what the
//! workload sent, whatever the program looks like.

use bpflab_guest::{Lab, Outcome};
use lesson_42_xdp::wire::{make_pair, DATAGRAMS, DROP, PASS, UDP_PORTS};
use lesson_42_xdp::{run_part, wrong_counts, PartRun};

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    attempt(lab, "drop.bpf.o")
}

/// Makes lesson 42's veth pair, attaches `object`'s `drop_udp` to veth1, runs lesson
/// 42's workload and checks what arrived.
pub fn attempt(lab: &mut Lab, object: &str) -> anyhow::Result<Outcome> {
    let pair = make_pair()?;
    let run = run_part(lab, &pair, object, "drop_udp", false)?;
    Ok(check(&run))
}

/// The check of exercise 42.1: the datagrams to port 9 dropped, by the program and none
/// arriving, those to the other port arrived, and every other frame passed.
pub fn check(run: &PartRun) -> Outcome {
    let [discard, other] = UDP_PORTS;
    let sent = DATAGRAMS as u64;
    let frames: u64 = run.seen().iter().sum();
    if let Some(wrong) = wrong_counts(run) {
        return Outcome::Failed(format!("not solved yet: {wrong}"));
    }
    let got = (
        run.sent.udp_received,
        run.verdicts[DROP],
        run.verdicts[PASS],
    );
    if got == ([0, sent], sent, frames - sent) && run.sent.pings.replies == run.sent.pings.sent {
        return Outcome::Passed(format!(
            "the {sent} datagrams to UDP port {discard} dropped, the {sent} to port {other} \
             arrived; the other {} frames passed",
            frames - sent
        ));
    }
    let [at_discard, at_other] = run.sent.udp_received;
    Outcome::Failed(match (at_discard, at_other) {
        (0, 0) => format!(
            "not solved yet: the program drops all UDP: the {sent} datagrams to port {discard} \
             were to be dropped, but the {sent} to port {other} were to arrive, and none did \
             (EXERCISE 42.1 in drop.bpf.c)"
        ),
        _ => format!(
            "not solved yet: {at_discard} of the {sent} datagrams to port {discard} arrived \
             (none should) and {at_other} of the {sent} to port {other} (all should); the \
             program dropped {} frames and passed {}",
            run.verdicts[DROP], run.verdicts[PASS]
        ),
    })
}
