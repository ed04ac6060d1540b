//! Lesson 2, user side, in two parts:
//!
//! - **counter**: attach `counter.bpf.o` to `tcp_sendmsg`, send messages over loopback and
//!   print the count the kernel keeps in the `stats` map, like the article's script.
//! - **latency**: attach `latency.bpf.o` to `tcp_sendmsg` and `tcp_v4_do_rcv`, send
//!   messages one by one and print, for each, how long it took from send to receive.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use aya::maps::perf::{PerfEvent, PerfEventArray};
use aya::maps::HashMap;
use aya::programs::KProbe;
use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{combine_parts, unsupported_as_outcome, Lab, Outcome};

/// Part a: rounds of messages, and how many messages per round.
const ROUNDS: usize = 3;
const MESSAGES_PER_ROUND: usize = 10;
/// Part b: how many messages to time, and their size.
const TIMED_MESSAGES: usize = 5;
const MESSAGE_SIZE: usize = 100;

/// Runs the parts the learner asked for (both by default).
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::new();
    if lab.wants_part("counter") {
        outcomes.push(counter(lab)?);
    }
    if lab.wants_part("latency") {
        // On a kernel without BTF this part is unsupported; the counter's result still
        // counts, and is reported beside it.
        match unsupported_as_outcome(latency(lab))? {
            Outcome::Unsupported(reason) => {
                outcomes.push(Outcome::Unsupported(format!("latency: {reason}")))
            }
            outcome => outcomes.push(outcome),
        }
    }
    Ok(combine_parts(outcomes))
}

fn counter(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part counter: a hash map counts tcp_sendmsg calls");
    let mut bpf = lab.load("counter.bpf.o")?;
    let program: &mut KProbe = bpf
        .program_mut("count_sendmsg")
        .context("counter.bpf.o has no function `count_sendmsg`")?
        .try_into()?;
    program.load()?;
    program.attach("tcp_sendmsg", 0)?;
    lab.note("kprobe attached to tcp_sendmsg");

    // The map the program writes: key 0 → number of calls.
    let stats: HashMap<_, u32, u64> = HashMap::try_from(
        bpf.map("stats")
            .context("counter.bpf.o has no map `stats`")?,
    )?;
    let read_count = || stats.get(&0, 0).unwrap_or(0);

    // Each send is one write(2), and each write(2) on a TCP socket is one tcp_sendmsg().
    // The article's script prints once a second; here, once per round of sends.
    let mut conversation = TcpConversation::open()?;
    let mut sent = 0;
    for _ in 0..ROUNDS {
        for _ in 0..MESSAGES_PER_ROUND {
            conversation.send(MESSAGE_SIZE)?;
            sent += 1;
        }
        lab.print(format!("tcp_sendmsg: {}", read_count()));
    }
    conversation.close()?;

    let counted = read_count();
    Ok(if counted == sent as u64 {
        Outcome::Passed(format!(
            "counter: {sent} messages sent, {counted} tcp_sendmsg calls counted"
        ))
    } else {
        Outcome::Failed(format!(
            "counter: {sent} messages sent but {counted} tcp_sendmsg calls counted"
        ))
    })
}

fn latency(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part latency: time from tcp_sendmsg to tcp_v4_do_rcv, per message");
    lab.require_part("latency")?;
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

    // One perf buffer per CPU receives the programs' samples.
    let mut samples =
        PerfEventArray::try_from(bpf.take_map("samples").context("no map `samples`")?)?;
    let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let mut buffers = cpus
        .into_iter()
        .map(|cpu| samples.open(cpu, None))
        .collect::<Result<Vec<_>, _>>()?;

    // Before 4.14, TCP's "prequeue" hands a segment that arrives while the reader waits
    // in recv() to that reader, which then runs tcp_v4_do_rcv in its own thread, where
    // the pid_tgid key does not match. tcp_low_latency=1 turns the prequeue off; from
    // 4.14, which removed the prequeue, the setting is still there and does nothing.
    std::fs::write("/proc/sys/net/ipv4/tcp_low_latency", "1")
        .context("turning TCP's prequeue off (net.ipv4.tcp_low_latency)")?;
    let mut conversation = TcpConversation::open()?;
    lab.note(format!(
        "client {} → server {}",
        conversation.client_addr, conversation.server_addr
    ));
    // The truth to compare with: the connection the workload made, from this process.
    let expected = Expected {
        client: conversation.client_addr,
        server: conversation.server_addr,
        pid: std::process::id(),
    };
    for _ in 0..TIMED_MESSAGES {
        conversation.send(MESSAGE_SIZE)?;
        // Let the server read before the next send: a message that arrives while the
        // server holds its socket is received later, in the server's thread, where the
        // pid_tgid key does not match.
        std::thread::sleep(Duration::from_millis(50));
    }
    conversation.close()?;

    let mut timed: Vec<Option<Sample>> = Vec::new();
    let mut lost = 0;
    for buffer in &mut buffers {
        buffer.for_each(|event| match event {
            PerfEvent::Sample { head, tail } => timed.push(Sample::parse(&[head, tail].concat())),
            PerfEvent::Lost { count } => lost += count,
        });
    }
    // The kernel's trace lines first, then ours: the same order on every run.
    let lines = lab.wait_for_trace("tcp_time:", TIMED_MESSAGES, Duration::from_secs(10));
    for sample in timed.iter().flatten() {
        lab.print(sample.to_string());
    }

    // With `--shell`, keep timing: try `nc -l -p 9000 &` then `echo hi | nc 127.0.0.1 9000`.
    lab.keep_attached(bpf);

    let wrong = timed.iter().find_map(|sample| match sample {
        None => Some("a sample too short to parse".to_string()),
        Some(s) => expected.mismatch(s),
    });
    Ok(match wrong {
        None if timed.len() == TIMED_MESSAGES && lines.len() == TIMED_MESSAGES && lost == 0 => {
            Outcome::Passed(format!(
                "latency: {TIMED_MESSAGES} messages sent, {TIMED_MESSAGES} timed from send to receive"
            ))
        }
        wrong => Outcome::Failed(format!(
            "latency: {TIMED_MESSAGES} messages sent, {} samples ({lost} lost), {} trace lines{}",
            timed.len(),
            lines.len(),
            wrong.map(|w| format!("; {w}")).unwrap_or_default()
        )),
    })
}

/// What every sample must say: the workload's own connection, sent by this process.
struct Expected {
    client: SocketAddr,
    server: SocketAddr,
    pid: u32,
}

impl Expected {
    /// How `sample` differs from the real connection, if it does.
    fn mismatch(&self, sample: &Sample) -> Option<String> {
        let seen = (
            SocketAddr::new(sample.saddr.into(), sample.sport),
            SocketAddr::new(sample.daddr.into(), sample.dport),
        );
        if seen != (self.client, self.server) {
            return Some(format!(
                "a sample says {} → {}, but the connection is {} → {}",
                seen.0, seen.1, self.client, self.server
            ));
        }
        if sample.pid != self.pid || sample.size != MESSAGE_SIZE as u64 {
            return Some(format!(
                "a sample says pid {} sent {} bytes, but pid {} sent {MESSAGE_SIZE}",
                sample.pid, sample.size, self.pid
            ));
        }
        None
    }
}

/// One message's journey, as `struct sample` in latency.bpf.c lays it out.
struct Sample {
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
