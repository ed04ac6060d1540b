//! Lesson 42, user side: XDP on a veth pair between two network namespaces, in three
//! parts, each on the same workload (see [`wire`]):
//!
//! - **count**: `count` passes every frame veth1 receives and counts them by protocol;
//!   the counts must be exactly what the workload sent.
//! - **drop**: `drop_udp` drops UDP before the kernel sees it: no datagram arrives, the
//!   rest does.
//! - **tx**: `answer_pings` turns each echo request into its reply and sends it back out
//!   of veth1 (XDP_TX): every ping is answered, and veth1's kernel answered none.

#[path = "wire.rs"]
pub mod wire;

use std::time::Duration;

use aya::programs::Xdp;
use bpflab_guest::netns::VethPair;
use bpflab_guest::{combine_parts, unsupported_as_outcome, Lab, Outcome};
use wire::{Mode, Sent, ACTIONS, DROP, KINDS, PASS, PINGS, TX};

/// How long to wait for a datagram before taking it as dropped.
const PATIENCE: Duration = Duration::from_millis(200);

/// Runs the parts the learner asked for (all by default), on one veth pair.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let pair = wire::make_pair()?;
    lab.note(format!(
        "veth pair: veth0 {} here, veth1 {} in a network namespace of its own",
        pair.near.addr, pair.far.addr
    ));
    let mut outcomes = Vec::new();
    type Part = fn(&mut Lab, &VethPair) -> anyhow::Result<Outcome>;
    let parts: [(&str, Part); 3] = [("count", count), ("drop", drop), ("tx", tx)];
    for (name, part) in parts {
        if lab.wants_part(name) {
            outcomes.push(match unsupported_as_outcome(part(lab, &pair))? {
                Outcome::Unsupported(reason) => Outcome::Unsupported(format!("{name}: {reason}")),
                outcome => outcome,
            });
        }
    }
    Ok(combine_parts(outcomes))
}

/// One part's run: `function` attached to veth1, the workload, the maps read.
pub struct PartRun {
    pub sent: Sent,
    pub counts: [u64; 7],
    pub verdicts: [u64; 5],
    /// Where the program ran.
    pub mode: Mode,
}

impl PartRun {
    /// What the program on veth1 must have seen, by kind: every frame the workload sent,
    /// but no TCP where generic XDP passes TCP's cloned sk_buffs by.
    pub fn seen(&self) -> [u64; 7] {
        let mut want = self.sent.expected();
        if !self.mode.sees_tcp() {
            want[wire::TCP] = 0;
        }
        want
    }
}

/// Loads `object` afresh (new maps), attaches `function` to veth1 (and, if `peer`, a
/// program that passes everything to veth0), sends the workload and reads the maps.
pub fn run_part(
    lab: &mut Lab,
    pair: &VethPair,
    object: &str,
    function: &str,
    peer: bool,
) -> anyhow::Result<PartRun> {
    let mut bpf = lab.load(object)?;
    let (mode, link) = wire::attach_far(&mut bpf, pair, function)?;
    lab.print(format!(
        "attached `{function}` to veth1 in {}",
        mode.describe()
    ));
    if !mode.sees_tcp() {
        lab.print(
            "generic XDP on this kernel (before Linux 5.3) does not run on cloned sk_buffs, \
             and TCP sends clones, keeping the original to retransmit: the program will see \
             no TCP",
        );
    }
    if peer && mode == Mode::Native {
        let pass: &mut Xdp = bpf
            .program_mut("pass")
            .ok_or_else(|| anyhow::anyhow!("{object} has no function `pass`"))?
            .try_into()?;
        pass.load()?;
        let (peer_mode, _) = wire::attach(pass, pair.near.index)?;
        lab.print(format!(
            "attached `pass` to veth0 in {}: native XDP_TX on veth1 delivers into veth0's \
             XDP receive queue, which exists only while veth0 has an XDP program",
            peer_mode.describe()
        ));
    }
    let sent = wire::send(pair, PATIENCE)?;
    sent.show(lab);
    let (counts, verdicts) = wire::read_maps(&bpf)?;
    lab.print(format!(
        "XDP on veth1 saw: {}; returned: {}",
        wire::show_counts(&KINDS, &counts),
        wire::show_counts(&ACTIONS, &verdicts)
    ));
    wire::detach_far(&mut bpf, pair, function, link)?;
    Ok(PartRun {
        sent,
        counts,
        verdicts,
        mode,
    })
}

/// The first thing wrong with what `run` counted, if anything: each frame the workload
/// sent that the program could see, counted once by kind, and nothing else.
pub fn wrong_counts(run: &PartRun) -> Option<String> {
    let want = run.seen();
    (run.counts != want).then(|| {
        format!(
            "the workload sent {} to veth1, and nothing else crossed it, but the program \
             counted {}",
            wire::show_counts(&KINDS, &want),
            wire::show_counts(&KINDS, &run.counts)
        )
    })
}

fn frames(run: &PartRun) -> u64 {
    run.seen().iter().sum()
}

fn judged(part: &str, wrong: Option<String>, passed: String) -> Outcome {
    match wrong {
        Some(wrong) => Outcome::Failed(format!("{part}: {wrong}")),
        None => Outcome::Passed(format!("{part}: {passed}")),
    }
}

fn count(lab: &mut Lab, pair: &VethPair) -> anyhow::Result<Outcome> {
    lab.note("part count: every frame passes (XDP_PASS), counted by protocol");
    let run = run_part(lab, pair, "xdp.bpf.o", "count", false)?;
    let s = &run.sent;
    let wrong = wrong_counts(&run).or_else(|| {
        let all_arrived = s.udp_received == s.udp_sent
            && s.pings.replies == s.pings.sent
            && s.far_kernel_echoes == s.pings.sent;
        let passed =
            run.verdicts[PASS] == frames(&run) && run.verdicts.iter().sum::<u64>() == frames(&run);
        (!all_arrived || !passed).then(|| {
            "every frame was to pass, and so every datagram to arrive and every ping to be \
             answered by veth1's kernel; they did not (above)"
                .to_string()
        })
    });
    Ok(judged(
        "count",
        wrong,
        format!(
            "{} frames counted and passed, as {}: {}",
            frames(&run),
            match run.mode.sees_tcp() {
                true => "sent",
                false => "sent past TCP's clones",
            },
            wire::show_counts(&KINDS, &run.counts)
        ),
    ))
}

fn drop(lab: &mut Lab, pair: &VethPair) -> anyhow::Result<Outcome> {
    lab.note("part drop: UDP is dropped (XDP_DROP) before veth1's kernel sees it");
    let run = run_part(lab, pair, "xdp.bpf.o", "drop_udp", false)?;
    let s = &run.sent;
    let udp: u64 = s.udp_sent.iter().sum();
    let wrong = wrong_counts(&run).or_else(|| {
        let right = s.udp_received == [0, 0]
            && run.verdicts[DROP] == udp
            && run.verdicts[PASS] == frames(&run) - udp
            && s.pings.replies == s.pings.sent;
        (!right).then(|| {
            format!(
                "the {udp} datagrams were to be dropped ({} were, and {} arrived) and the rest \
                 to pass ({} did, of {})",
                run.verdicts[DROP],
                s.udp_received.iter().sum::<u64>(),
                run.verdicts[PASS],
                frames(&run) - udp
            )
        })
    });
    Ok(judged(
        "drop",
        wrong,
        format!(
            "the {udp} UDP datagrams dropped, none arrived; {} passed, {} frames",
            match run.mode.sees_tcp() {
                true => "TCP and ICMP",
                false => "ICMP",
            },
            frames(&run) - udp
        ),
    ))
}

fn tx(lab: &mut Lab, pair: &VethPair) -> anyhow::Result<Outcome> {
    lab.note("part tx: echo requests are answered from XDP (XDP_TX), the rest passes");
    let run = run_part(lab, pair, "xdp.bpf.o", "answer_pings", true)?;
    let s = &run.sent;
    let pings = u64::from(PINGS);
    let wrong = wrong_counts(&run).or_else(|| {
        let right = s.pings.replies == pings
            && s.far_kernel_echoes == 0
            && run.verdicts[TX] == pings
            && run.verdicts[PASS] == frames(&run) - pings
            && s.udp_received == s.udp_sent;
        (!right).then(|| {
            format!(
                "the {pings} echo requests were to be answered from XDP (XDP_TX {}): {} replies \
                 came, veth1's kernel answered {}",
                run.verdicts[TX], s.pings.replies, s.far_kernel_echoes
            )
        })
    });
    Ok(judged(
        "tx",
        wrong,
        format!(
            "the {pings} pings answered from XDP (XDP_TX), none by veth1's kernel; the other \
             {} frames passed",
            frames(&run) - pings
        ),
    ))
}
