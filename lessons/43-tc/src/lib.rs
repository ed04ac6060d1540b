//! Lesson 43, user side: tc classifiers on `lo`, egress and ingress, in three parts, each
//! on the same workload (see [`wire`]):
//!
//! - **count**: `count_egress` and `count_ingress` pass every packet and count them by
//!   protocol and bytes; each direction must see exactly what the workload sent, and
//!   every packet that left must come back in.
//! - **drop**: `drop_echo_requests` drops echo requests at ingress (TC_ACT_SHOT): the
//!   kernel answers none, and the rest passes.
//! - **rewrite**: `rewrite_port` sends the datagrams to UDP port 9 to port 4243 instead,
//!   at egress: none arrives at 9, all of them at 4243.

#[path = "wire.rs"]
pub mod wire;

use std::time::Duration;

use aya::programs::TcAttachType;
use bpflab_guest::{combine_parts, unsupported_as_outcome, Lab, Outcome};
use wire::{Maps, Sent, Tally, EGRESS, ICMP, INGRESS, OK, SHOT, TCP, UDP};

/// How long to wait for a datagram, or an echo reply, before taking it as dropped.
pub const PATIENCE: Duration = Duration::from_millis(200);

/// Runs the parts the learner asked for (all by default).
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::new();
    type Part = fn(&mut Lab) -> anyhow::Result<Outcome>;
    let parts: [(&str, Part); 3] = [("count", count), ("drop", drop), ("rewrite", rewrite)];
    for (name, part) in parts {
        if lab.wants_part(name) {
            outcomes.push(match unsupported_as_outcome(part(lab))? {
                Outcome::Unsupported(reason) => Outcome::Unsupported(format!("{name}: {reason}")),
                outcome => outcome,
            });
        }
    }
    Ok(combine_parts(outcomes))
}

/// One part's run: the workload, and the maps read afterwards.
pub struct PartRun {
    pub sent: Sent,
    pub maps: Maps,
}

/// Loads `object` afresh (new maps), attaches `egress` and `ingress` to `lo`, sends the
/// workload and reads the maps. The programs are detached when it returns.
pub fn run_part(
    lab: &mut Lab,
    object: &str,
    egress: &str,
    ingress: &str,
) -> anyhow::Result<PartRun> {
    let mut bpf = lab.load(object)?;
    for (function, direction) in [
        (egress, TcAttachType::Egress),
        (ingress, TcAttachType::Ingress),
    ] {
        let path = wire::attach(&mut bpf, function, direction)?;
        lab.print(format!(
            "attached `{function}` to {} {}",
            wire::DEVICE,
            path.describe(direction)
        ));
    }
    let sent = wire::send(PATIENCE)?;
    sent.show(lab);
    let maps = wire::read_maps(&bpf)?;
    for (direction, name) in [(EGRESS, "egress"), (INGRESS, "ingress")] {
        lab.print(format!(
            "tc on lo {name} saw: {}; returned: {}",
            wire::show_tally(&maps.counts[direction]),
            wire::show_verdicts(&maps.verdicts[direction])
        ));
    }
    Ok(PartRun { sent, maps })
}

/// What each direction must have counted when `icmp` echo packets (requests and replies)
/// crossed it, egress then ingress: every datagram and every SYN and RST, each once.
pub fn expected(sent: &Sent, icmp: [u64; 2]) -> [[u64; 7]; 2] {
    let udp = sent.datagrams();
    let tcp = 2 * sent.syns;
    icmp.map(|icmp| [0, icmp, tcp, udp, 0, 0, 0])
}

/// The first thing wrong with what `run` counted, if anything, when `icmp` echo packets
/// crossed egress and ingress: each direction's packets by kind, the bytes of the
/// datagrams and echo packets (whose sizes are known), and TCP's the same both ways
/// (its SYN's options are the kernel's choice).
pub fn wrong_counts(run: &PartRun, icmp: [u64; 2]) -> Option<String> {
    let want = expected(&run.sent, icmp);
    let counts = &run.maps.counts;
    for (direction, name) in [(EGRESS, "egress"), (INGRESS, "ingress")] {
        let packets: Vec<u64> = counts[direction].iter().map(|(p, _)| *p).collect();
        let bytes = |kind: usize| counts[direction][kind].1;
        let right = packets == want[direction]
            && bytes(UDP) == want[direction][UDP] * wire::UDP_BYTES
            && bytes(ICMP) == want[direction][ICMP] * wire::ICMP_BYTES;
        if !right {
            let mut tally: Tally = [(0, 0); 7];
            for (kind, t) in tally.iter_mut().enumerate() {
                let bytes = match kind {
                    UDP => wire::UDP_BYTES,
                    ICMP => wire::ICMP_BYTES,
                    _ => 0,
                };
                *t = (want[direction][kind], want[direction][kind] * bytes);
            }
            return Some(format!(
                "{name}: the workload sent {} (TCP's bytes aside), but the program counted {}",
                wire::show_tally(&tally),
                wire::show_tally(&counts[direction])
            ));
        }
    }
    (counts[EGRESS][TCP] != counts[INGRESS][TCP]).then(|| {
        format!(
            "every TCP segment that left lo came back in, but egress counted {:?} and ingress \
             {:?} (packets, bytes)",
            counts[EGRESS][TCP], counts[INGRESS][TCP]
        )
    })
}

/// The packets that crossed `direction`, by the counts.
pub fn packets(run: &PartRun, direction: usize) -> u64 {
    run.maps.counts[direction].iter().map(|(p, _)| p).sum()
}

fn judged(part: &str, wrong: Option<String>, passed: String) -> Outcome {
    match wrong {
        Some(wrong) => Outcome::Failed(format!("{part}: {wrong}")),
        None => Outcome::Passed(format!("{part}: {passed}")),
    }
}

fn count(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part count: every packet passes (TC_ACT_OK), counted by direction and protocol");
    let run = run_part(lab, "tc.bpf.o", "count_egress", "count_ingress")?;
    let s = &run.sent;
    let echoes = 2 * u64::from(wire::PINGS);
    let wrong = wrong_counts(&run, [echoes; 2]).or_else(|| {
        let arrived = s.udp_received == [s.udp_sent[0], s.udp_sent[1], 0]
            && s.pings.replies == s.pings.sent
            && s.kernel_echoes == s.pings.sent;
        let passed = [EGRESS, INGRESS].iter().all(|&d| {
            let v = &run.maps.verdicts[d];
            v[OK] == packets(&run, d) && v.iter().sum::<u64>() == v[OK]
        });
        (!arrived || !passed).then(|| {
            "every packet was to pass, and so every datagram to arrive and every ping to be \
             answered; they did not (above)"
                .to_string()
        })
    });
    let total = packets(&run, EGRESS);
    Ok(judged(
        "count",
        wrong,
        format!(
            "{total} packets out and the same {total} back in, counted and passed: {}",
            wire::show_tally(&run.maps.counts[EGRESS])
        ),
    ))
}

fn drop(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part drop: echo requests are dropped at ingress (TC_ACT_SHOT), the rest passes");
    let run = run_part(lab, "tc.bpf.o", "count_egress", "drop_echo_requests")?;
    let s = &run.sent;
    let pings = u64::from(wire::PINGS);
    // The requests leave and come back in, where they are dropped: no replies.
    let wrong = wrong_counts(&run, [pings; 2]).or_else(|| {
        let v = &run.maps.verdicts[INGRESS];
        let right = s.pings.replies == 0
            && s.kernel_echoes == 0
            && v[SHOT] == pings
            && v[OK] == packets(&run, INGRESS) - pings
            && s.udp_received == [s.udp_sent[0], s.udp_sent[1], 0];
        (!right).then(|| {
            format!(
                "the {pings} echo requests were to be dropped at ingress (TC_ACT_SHOT {}) and \
                 the rest to pass: {} replies came, the kernel received {} requests",
                v[SHOT], s.pings.replies, s.kernel_echoes
            )
        })
    });
    Ok(judged(
        "drop",
        wrong,
        format!(
            "the {pings} echo requests dropped at ingress, none answered; the other {} packets \
             passed",
            packets(&run, INGRESS) - pings
        ),
    ))
}

fn rewrite(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part rewrite: datagrams to UDP port 9 leave for port 4243 instead (egress)");
    let run = run_part(lab, "tc.bpf.o", "rewrite_port", "count_ingress")?;
    let s = &run.sent;
    let [from, other] = wire::UDP_PORTS;
    let to = wire::REWRITTEN_TO;
    let moved = s.udp_sent[0];
    let echoes = 2 * u64::from(wire::PINGS);
    let wrong = wrong_counts(&run, [echoes; 2]).or_else(|| {
        let right = s.udp_received == [0, s.udp_sent[1], moved]
            && run.maps.rewrites == moved
            && run.maps.verdicts[EGRESS][OK] == packets(&run, EGRESS)
            && s.pings.replies == s.pings.sent;
        (!right).then(|| {
            format!(
                "the {moved} datagrams to port {from} were to arrive at port {to} ({} did, {} at \
                 {from}; {} rewrites) and those to {other} at {other} ({} did)",
                s.udp_received[2], s.udp_received[0], run.maps.rewrites, s.udp_received[1]
            )
        })
    });
    Ok(judged(
        "rewrite",
        wrong,
        format!(
            "the {moved} datagrams to port {from} rewritten at egress, all arrived at port {to}, \
             none at {from}; those to {other} untouched"
        ),
    ))
}
