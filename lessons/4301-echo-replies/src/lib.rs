//! Exercise 43.1, user side: lesson 43's workload on `lo`, with `drop_echo_replies` from
//! `drop.bpf.c` at egress and `count_ingress` at ingress, and the exercise's check, which
//! compares what arrived with what the workload sent, whatever the program looks like.

use bpflab_guest::{Lab, Outcome};
use lesson_43_tc::wire::{self, Tally, INGRESS, PINGS, SHOT};
use lesson_43_tc::{expected, run_part, PartRun};

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    attempt(lab, "drop.bpf.o")
}

/// Attaches `object`'s `drop_echo_replies` to lo's egress and `count_ingress` to its
/// ingress, runs lesson 43's workload and checks what arrived.
pub fn attempt(lab: &mut Lab, object: &str) -> anyhow::Result<Outcome> {
    lab.note("exercise 43.1: echo replies are to be dropped at egress, the rest to pass");
    let run = run_part(lab, object, "drop_echo_replies", "count_ingress")?;
    Ok(check(&run))
}

/// The check of exercise 43.1: each echo request left, arrived and was answered by the
/// kernel; no reply came back in, nor to the ping; the program dropped exactly as many
/// packets as there were replies; every datagram and TCP segment came back in.
/// `count_ingress`, which is not the learner's, counts what came in.
pub fn check(run: &PartRun) -> Outcome {
    let s = &run.sent;
    let pings = u64::from(PINGS);
    let shot = run.maps.verdicts[wire::EGRESS][SHOT];
    // What must have come in: the requests, but none of the replies; all the rest.
    let want = expected(s, [0, pings])[INGRESS];
    let came: Vec<u64> = run.maps.counts[INGRESS].iter().map(|(p, _)| *p).collect();
    let udp_arrived = s.udp_received == [s.udp_sent[0], s.udp_sent[1], 0];
    let replies_dropped = s.kernel_echoes == pings && s.pings.replies == 0 && shot == pings;
    if came == want && replies_dropped && udp_arrived {
        return Outcome::Passed(format!(
            "the {pings} echo requests left and were answered by the kernel, the {pings} \
             replies dropped on their way out; every other packet passed"
        ));
    }
    let mut want_tally: Tally = [(0, 0); 7];
    for (t, n) in want_tally.iter_mut().zip(want) {
        t.0 = n;
    }
    let packets_only = |tally: &Tally| {
        let mut t = *tally;
        t.iter_mut().for_each(|(_, bytes)| *bytes = 0);
        wire::show_tally(&t).replace(" (0 bytes)", "")
    };
    Outcome::Failed(match (s.kernel_echoes, s.pings.replies) {
        (0, _) => format!(
            "not solved yet: the program drops the echo requests too: the kernel received 0 of \
             the {pings} (all were to arrive and be answered, and only the replies dropped on \
             their way out; EXERCISE 43.1 in drop.bpf.c)"
        ),
        (_, replies) if replies > 0 => format!(
            "not solved yet: {replies} of the {pings} echo replies came back: they were to be \
             dropped at egress"
        ),
        _ => format!(
            "not solved yet: the replies were dropped, but not only they: the program dropped \
             {shot} packets at egress (the {pings} replies were to be all), and in came {} \
             (the workload sent {}); datagrams arrived at ports 9, 4242 and 4243: {:?}",
            packets_only(&run.maps.counts[INGRESS]),
            packets_only(&want_tally),
            s.udp_received
        ),
    })
}
