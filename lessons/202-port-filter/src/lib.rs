//! Exercise 2.2, user side: lesson 2's latency part with two servers, and the exercise's
//! check. The change to make is in `latency.bpf.c`; nothing here needs one.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use aya::maps::perf::{PerfEvent, PerfEventArray};
use aya::programs::KProbe;
use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{Lab, Outcome};

/// The servers' ports, and how many messages the workload sends to each.
pub const PORTS: [(u16, usize); 2] = [(8080, 3), (9090, 2)];
const MESSAGE_SIZE: usize = 100;

/// Runs the exercise (and its solution, lesson 22, with the solution's `latency.bpf.c`)
/// inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("latency.bpf.o")?;
    for (function, target) in [
        ("on_sendmsg", "tcp_sendmsg"),
        ("on_v4_do_rcv", "tcp_v4_do_rcv"),
    ] {
        let program: &mut KProbe = bpf
            .program_mut(function)
            .with_context(|| format!("latency.bpf.o has no function `{function}`"))?
            .try_into()?;
        program.load()?;
        program.attach(target, 0)?;
    }
    lab.note("kprobes attached to tcp_sendmsg and tcp_v4_do_rcv");

    let mut samples =
        PerfEventArray::try_from(bpf.take_map("samples").context("no map `samples`")?)?;
    let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let mut buffers = cpus
        .into_iter()
        .map(|cpu| samples.open(cpu, None))
        .collect::<Result<Vec<_>, _>>()?;

    // As in lesson 2: before 4.14, TCP's prequeue would run tcp_v4_do_rcv in the
    // receiver's thread, where the pid_tgid key does not match; this turns it off.
    std::fs::write("/proc/sys/net/ipv4/tcp_low_latency", "1")
        .context("turning TCP's prequeue off (net.ipv4.tcp_low_latency)")?;
    // One conversation per server; the messages go to each in turn.
    let mut conversations = Vec::new();
    for (port, _) in PORTS {
        let conversation = TcpConversation::open_on(port)?;
        lab.note(format!(
            "client {} → server {}",
            conversation.client_addr, conversation.server_addr
        ));
        conversations.push(conversation);
    }
    let rounds = PORTS.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for round in 0..rounds {
        for (conversation, (_, messages)) in conversations.iter_mut().zip(PORTS) {
            if round < messages {
                conversation.send(MESSAGE_SIZE)?;
                // As in lesson 2: let the server read before the next send.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let connections: Vec<(SocketAddr, SocketAddr)> = conversations
        .iter()
        .map(|c| (c.client_addr, c.server_addr))
        .collect();
    for conversation in conversations {
        conversation.close()?;
    }

    let mut timed = Vec::new();
    let mut lost = 0;
    for buffer in &mut buffers {
        buffer.for_each(|event| match event {
            PerfEvent::Sample { head, tail } => timed.push(Sample::parse(&[head, tail].concat())),
            PerfEvent::Lost { count } => lost += count,
        });
    }
    let timed: Vec<Sample> = timed.into_iter().flatten().collect();
    for sample in &timed {
        lab.print(sample.to_string());
    }
    Ok(check(&timed, lost, &connections))
}

/// The check of exercise 2.2, for either port: every sample is of one of the workload's
/// connections, all are for the same server port, and every message sent to that port
/// was timed (so the filter neither let another port through nor dropped sends).
pub fn check(timed: &[Sample], lost: u64, connections: &[(SocketAddr, SocketAddr)]) -> Outcome {
    if lost > 0 {
        return Outcome::Failed(format!("{lost} samples were lost"));
    }
    if let Some(stray) = timed
        .iter()
        .find(|s| !connections.contains(&s.connection()))
    {
        let (from, to) = stray.connection();
        return Outcome::Failed(format!(
            "not solved yet: a sample says {from} → {to}, which is none of the workload's \
             connections (are the addresses and ports still read as in lesson 2?)"
        ));
    }
    let per_port: Vec<(u16, usize, usize)> = PORTS
        .iter()
        .map(|&(port, sent)| (port, sent, timed.iter().filter(|s| s.dport == port).count()))
        .collect();
    let kept: Vec<&(u16, usize, usize)> = per_port.iter().filter(|(_, _, n)| *n > 0).collect();
    let sent: usize = PORTS.iter().map(|(_, n)| n).sum();
    match kept.as_slice() {
        [(port, sent_to, n)] if n == sent_to => Outcome::Passed(format!(
            "{sent} messages sent, {n} timed: the {sent_to} sent to port {port}, and none other"
        )),
        [(port, sent_to, n)] => Outcome::Failed(format!(
            "not solved yet: {sent_to} messages were sent to port {port}, but {n} timed"
        )),
        [] => Outcome::Failed(format!(
            "not solved yet: {sent} messages sent, none timed: keep the sends to the port you \
             choose (8080 or 9090)"
        )),
        _ => Outcome::Failed(format!(
            "not solved yet: messages to {} were all timed: keep only those to the port you \
             choose (EXERCISE 2.2 in latency.bpf.c)",
            kept.iter()
                .map(|(port, _, n)| format!("port {port} ({n})"))
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}

/// One message's journey, as `struct sample` in latency.bpf.c lays it out.
pub struct Sample {
    size: u64,
    pid: u32,
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    sport: u16,
    dport: u16,
    latency_ns: u64,
}

impl Sample {
    fn parse(bytes: &[u8]) -> Option<Sample> {
        let u64_at = |i: usize| Some(u64::from_ne_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
        let u32_at = |i: usize| Some(u32::from_ne_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
        let u16_at = |i: usize| Some(u16::from_ne_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
        // Addresses stay in network byte order, as the kernel stores them.
        let addr_at = |i: usize| -> Option<Ipv4Addr> {
            let b: [u8; 4] = bytes.get(i..i + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(b))
        };
        Some(Sample {
            size: u64_at(8)?,
            pid: u32_at(16)?,
            saddr: addr_at(20)?,
            daddr: addr_at(24)?,
            sport: u16_at(28)?,
            dport: u16_at(30)?,
            latency_ns: u64_at(32)?,
        })
    }

    /// Client → server, as the sample says.
    fn connection(&self) -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::new(self.saddr.into(), self.sport),
            SocketAddr::new(self.daddr.into(), self.dport),
        )
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} → {}:{}  pid {}  {} bytes  {:.3} ms",
            self.saddr,
            self.sport,
            self.daddr,
            self.dport,
            self.pid,
            self.size,
            self.latency_ns as f64 / 1e6
        )
    }
}
