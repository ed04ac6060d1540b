//! Lesson 41, user side: tcpdump's `tcp dst port 80` on a packet socket, in two parts.
//!
//! - **classic**: the sixteen instructions `tcpdump -dd` prints, attached as classic BPF
//!   with `SO_ATTACH_FILTER`, read back from the kernel with `SO_GET_FILTER`.
//! - **extended**: the same filter written in C (`filter.bpf.c`), loaded as an eBPF
//!   socket filter and attached with `SO_ATTACH_BPF`; it also counts in a map.
//!
//! Both run on the same loopback traffic, whose every segment is known from the kernel's
//! own count, and each must pass exactly the packets sent to TCP port 80: no more, no less.

#[path = "cbpf.rs"]
pub mod cbpf;

use std::time::Duration;

use anyhow::Context as _;
use aya::maps::Array;
use aya::programs::SocketFilter;
use bpflab_guest::packets::{PacketSocket, Received};
use bpflab_guest::traffic::{tcp_exchange, udp_datagrams, TcpExchange};
use bpflab_guest::{combine_parts, unsupported_as_outcome, Lab, Outcome};

/// The workload: messages per TCP conversation and their size, UDP datagrams to port 80.
const MESSAGES: usize = 3;
const MESSAGE_SIZE: usize = 100;
const DATAGRAMS: usize = 2;
/// The port the filter passes, and another one it must not.
pub const PORT: u16 = 80;
pub const OTHER_PORT: u16 = 8080;

/// Runs the parts the learner asked for (both by default).
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::new();
    if lab.wants_part("classic") {
        outcomes.push(classic(lab)?);
    }
    if lab.wants_part("extended") {
        match unsupported_as_outcome(extended(lab))? {
            Outcome::Unsupported(reason) => {
                outcomes.push(Outcome::Unsupported(format!("extended: {reason}")))
            }
            outcome => outcomes.push(outcome),
        }
    }
    Ok(combine_parts(outcomes))
}

/// What the workload sent, from the kernel's own counts: the truth the filters are
/// checked against.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// The TCP conversation with a server on [`PORT`].
    pub to_port: TcpExchange,
    /// The TCP conversation with a server on [`OTHER_PORT`].
    pub to_other: TcpExchange,
    /// UDP datagrams sent to [`PORT`]: port 80, but not TCP.
    pub udp_to_port: u64,
}

impl Mix {
    /// Sends it all over loopback, one conversation after the other.
    pub fn send() -> anyhow::Result<Mix> {
        Ok(Mix {
            to_port: tcp_exchange(PORT, MESSAGES, MESSAGE_SIZE)?,
            to_other: tcp_exchange(OTHER_PORT, MESSAGES, MESSAGE_SIZE)?,
            udp_to_port: udp_datagrams(PORT, DATAGRAMS, 32)?,
        })
    }

    /// Every packet sent, each of which crosses `lo` twice.
    pub fn packets(&self) -> u64 {
        let tcp = |e: &TcpExchange| e.to_server + e.to_client;
        tcp(&self.to_port) + tcp(&self.to_other) + self.udp_to_port
    }

    /// Prints it, for the learner.
    pub fn show(&self, lab: &Lab) {
        let (p, o) = (&self.to_port, &self.to_other);
        lab.print(format!(
            "sent: TCP port {PORT}: {} segments to it, {} back; TCP port {OTHER_PORT}: {} and \
             {}; UDP port {PORT}: {} datagrams: {} packets (TCP_INFO of each client, and the UDP sender)",
            p.to_server,
            p.to_client,
            o.to_server,
            o.to_client,
            self.udp_to_port,
            self.packets()
        ));
    }
}

/// Starts `socket` (its filter attached) on `lo`, runs the workload and reads what the
/// socket received: at least the `expected` packets of what the workload sent (or what
/// came within half a second), and whatever else was queued by then.
pub fn capture(
    lab: &Lab,
    socket: &PacketSocket,
    expected: impl FnOnce(&Mix) -> u64,
) -> anyhow::Result<(Mix, Received)> {
    socket.listen_on("lo")?;
    lab.note(format!(
        "workload: TCP to ports {PORT} and {OTHER_PORT} ({MESSAGES} messages each), \
         {DATAGRAMS} UDP datagrams to port {PORT}"
    ));
    let mix = Mix::send()?;
    mix.show(lab);
    let received = socket.drain(expected(&mix), Duration::from_millis(500))?;
    Ok((mix, received))
}

/// Each segment sent to TCP port 80 crosses `lo` twice: leaving, then arriving.
fn to_port_twice(mix: &Mix) -> u64 {
    2 * mix.to_port.to_server
}

/// Whether the socket received exactly the packets sent to TCP port 80, both copies.
fn judge(part: &str, mix: &Mix, received: &Received) -> Option<String> {
    let want = mix.to_port.to_server;
    if received.outgoing == want && received.incoming == want && received.dropped == 0 {
        return None;
    }
    Some(format!(
        "{part}: {want} segments were sent to TCP port {PORT}, each crossing lo twice, but the \
         socket received {} leaving and {} arriving ({} dropped)",
        received.outgoing, received.incoming, received.dropped
    ))
}

fn classic(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part classic: tcpdump's program as classic BPF, attached with SO_ATTACH_FILTER");
    let socket = PacketSocket::open()?;
    socket.attach_classic(&cbpf::TCP_DST_PORT_80)?;
    let kept = socket.classic_filter()?;
    lab.note(format!(
        "the kernel kept {} classic instructions (SO_GET_FILTER):",
        kept.len()
    ));
    let listing = cbpf::disassemble(&kept);
    for line in &listing {
        lab.print(line.clone());
    }
    let (mix, received) = capture(lab, &socket, to_port_twice)?;
    lab.print(format!(
        "passed: {} leaving lo, {} arriving",
        received.outgoing, received.incoming
    ));
    let same = kept.len() == cbpf::TCP_DST_PORT_80.len()
        && kept
            .iter()
            .zip(&cbpf::TCP_DST_PORT_80)
            .all(|(a, b)| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k));
    let verdict = if !same
        || listing
            .iter()
            .map(String::as_str)
            .ne(cbpf::TCPDUMP_D.lines())
    {
        Some("classic: the program the kernel kept is not tcpdump's".to_string())
    } else {
        judge("classic", &mix, &received)
    };
    Ok(match verdict {
        Some(wrong) => Outcome::Failed(wrong),
        None => Outcome::Passed(format!(
            "classic: {} of {} packets passed, the {} segments to TCP port {PORT}, twice each",
            received.total(),
            2 * mix.packets(),
            mix.to_port.to_server
        )),
    })
}

fn extended(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part extended: the same filter in C, an eBPF socket filter (SO_ATTACH_BPF)");
    lab.require_part("extended")?;
    let mut bpf = lab.load("filter.bpf.o")?;
    let program: &mut SocketFilter = bpf
        .program_mut("tcp_dst_port")
        .context("filter.bpf.o has no function `tcp_dst_port`")?
        .try_into()?;
    program.load()?;
    show_verified(lab, program);
    let socket = PacketSocket::open()?;
    program.attach(&socket)?;
    let (mix, received) = capture(lab, &socket, to_port_twice)?;
    let counts: Array<_, u64> = Array::try_from(
        bpf.map("counts")
            .context("filter.bpf.o has no map `counts`")?,
    )?;
    let (seen, accepted) = (counts.get(&0, 0)?, counts.get(&1, 0)?);
    lab.print(format!(
        "the program saw {seen} packets and accepted {accepted}; the socket received {} \
         leaving lo, {} arriving",
        received.outgoing, received.incoming
    ));
    let wrong = judge("extended", &mix, &received).or_else(|| {
        (seen != 2 * mix.packets() || accepted != received.total()).then(|| {
            format!(
                "extended: {} packets crossed lo and {} were received, but the map counted {seen} \
                 seen and {accepted} accepted",
                2 * mix.packets(),
                received.total()
            )
        })
    });
    Ok(match wrong {
        Some(wrong) => Outcome::Failed(wrong),
        None => Outcome::Passed(format!(
            "extended: {accepted} of {seen} packets passed, the {} segments to TCP port {PORT}, \
             twice each",
            mix.to_port.to_server
        )),
    })
}

/// What the kernel says of the loaded program (`BPF_OBJ_GET_INFO_BY_FD`, Linux 4.13).
fn show_verified(lab: &Lab, program: &SocketFilter) {
    match program.info() {
        Ok(info) => {
            let xlated = info.size_translated().unwrap_or(0) / 8;
            let jited = match info.size_jitted() {
                0 => "not JIT-compiled".to_string(),
                bytes => format!("JIT-compiled to {bytes} bytes of machine code"),
            };
            let walked = info
                .verified_instruction_count()
                .map(|n| format!("; the verifier processed {n} instructions"))
                .unwrap_or_default();
            lab.print(format!(
                "loaded: {xlated} eBPF instructions after the verifier's rewrites, {jited}{walked}"
            ));
        }
        Err(e) => lab.note(format!(
            "the kernel does not describe loaded programs (BPF_OBJ_GET_INFO_BY_FD, Linux 4.13): {e}"
        )),
    }
}
