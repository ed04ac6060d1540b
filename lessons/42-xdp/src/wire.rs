//! Lesson 42's wire and workload: a veth pair from the agent's network namespace (veth0,
//! 10.42.0.1) to another (veth1, 10.42.0.2), the XDP programs attached to veth1, and
//! traffic whose every frame is known: UDP datagrams to two ports, TCP SYNs to a closed
//! port, echo requests. Neither kernel sends anything of its own on the pair (no IPv6, no ARP:
//! see [`VethPair`]), so what the program counts can be checked exactly.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::Context as _;
use aya::maps::Array;
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use bpflab_guest::echo::{ping, Pings};
use bpflab_guest::netlink::NoVeth;
use bpflab_guest::netns::{snmp_counter, VethPair};
use bpflab_guest::traffic::udp_across;
use bpflab_guest::Unsupported;

/// The UDP ports datagrams are sent to, and how many to each.
pub const UDP_PORTS: [u16; 2] = [9, 4242];
pub const DATAGRAMS: usize = 3;
/// Connections tried to a TCP port nothing listens on: each is one SYN, which veth1's
/// kernel refuses with a RST (a whole conversation's count of segments would depend on
/// how its ACKs fall in time).
pub const TCP_PORT: u16 = 80;
pub const CONNECTS: u64 = 2;
/// Echo requests sent.
pub const PINGS: u16 = 3;

/// The kinds of frame the programs count (`counts` in xdp.bpf.c), in its order.
pub const KINDS: [&str; 7] = ["ARP", "ICMP", "TCP", "UDP", "other IPv4", "IPv6", "other"];
/// TCP's place in [`KINDS`].
pub const TCP: usize = 2;
/// XDP's actions (`verdicts` in xdp.bpf.c), by value.
pub const ACTIONS: [&str; 5] = [
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_TX",
    "XDP_REDIRECT",
];
pub const DROP: usize = 1;
pub const PASS: usize = 2;
pub const TX: usize = 3;

/// Makes the pair: unsupported, naming the driver, on a kernel without veth.
pub fn make_pair() -> anyhow::Result<VethPair> {
    VethPair::create().map_err(|e| match e.downcast_ref::<NoVeth>() {
        Some(no) => Unsupported(format!(
            "needs the veth driver (CONFIG_VETH, Linux 2.6.24), the wire between the two \
             network namespaces: {no}"
        ))
        .into(),
        None => e,
    })
}

/// Where an XDP program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// In the driver, on the frame before any sk_buff exists (veth: Linux 4.19).
    Native,
    /// In the kernel's generic receive path, on the sk_buff (any device: Linux 4.12),
    /// because the driver refused native mode, for this reason.
    Generic(String),
}

impl Mode {
    /// For the learner.
    pub fn describe(&self) -> String {
        match self {
            Mode::Native => "native mode (in veth's driver, XDP_FLAGS_DRV_MODE)".into(),
            Mode::Generic(why) => format!(
                "generic mode (on the sk_buff, XDP_FLAGS_SKB_MODE), as native mode was \
                 refused: {why}"
            ),
        }
    }

    /// Whether the program runs on TCP's frames too. Generic XDP before Linux 5.3 passes
    /// a cloned sk_buff by without running the program (net/core/dev.c,
    /// `netif_receive_generic_xdp`: 4.15's returns XDP_PASS for `skb_cloned`, 5.4's no
    /// longer does), and TCP sends clones: it keeps the original to retransmit.
    pub fn sees_tcp(&self) -> bool {
        match self {
            Mode::Native => true,
            Mode::Generic(_) => bpflab_guest::release::kernel() >= (5, 3),
        }
    }
}

/// Attaches `program` (loaded) to interface `index` of the calling thread's namespace:
/// natively if the driver takes it, else generic XDP; unsupported if neither.
pub fn attach(program: &mut Xdp, index: u32) -> anyhow::Result<(Mode, XdpLinkId)> {
    let native = match program.attach_to_if_index(index, XdpMode::Driver) {
        Ok(link) => return Ok((Mode::Native, link)),
        Err(e) => format!("{:#}", anyhow::Error::from(e)),
    };
    match program.attach_to_if_index(index, XdpMode::Skb) {
        Ok(link) => Ok((Mode::Generic(native), link)),
        Err(e) => Err(Unsupported(format!(
            "needs XDP on a veth: natively (Linux 4.19) or generic XDP (Linux 4.12), and this \
             kernel refused both (native: {native}; generic: {:#})",
            anyhow::Error::from(e)
        ))
        .into()),
    }
}

/// Loads `function` of `bpf` and attaches it to the pair's far end, veth1 (from a thread
/// in its namespace, where its index means veth1).
pub fn attach_far(
    bpf: &mut Ebpf,
    pair: &VethPair,
    function: &str,
) -> anyhow::Result<(Mode, XdpLinkId)> {
    let program = far_program(bpf, function)?;
    program.load()?;
    let index = pair.far.index;
    pair.netns.run(|| attach(program, index))
}

/// Detaches `function` from veth1, in veth1's namespace. Before Linux 5.9 the attachment
/// is made over netlink and outlives the program's file descriptor until it is undone
/// there: dropping the program from another namespace would ask that namespace's
/// interface of the same index, and leave veth1's program in place for the next part.
pub fn detach_far(
    bpf: &mut Ebpf,
    pair: &VethPair,
    function: &str,
    link: XdpLinkId,
) -> anyhow::Result<()> {
    let program = far_program(bpf, function)?;
    pair.netns
        .run(|| program.detach(link).context("detaching from veth1"))
}

fn far_program<'a>(bpf: &'a mut Ebpf, function: &str) -> anyhow::Result<&'a mut Xdp> {
    Ok(bpf
        .program_mut(function)
        .with_context(|| format!("xdp.bpf.o has no function `{function}`"))?
        .try_into()?)
}

/// What the workload sent, and what arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams sent to each of [`UDP_PORTS`], and received there.
    pub udp_sent: [u64; 2],
    pub udp_received: [u64; 2],
    /// SYNs sent, each refused (a RST came back).
    pub syns: u64,
    /// The echo requests and their replies.
    pub pings: Pings,
    /// Echo requests veth1's kernel answered itself (its `Icmp InEchos`, before and
    /// after).
    pub far_kernel_echoes: u64,
}

impl Sent {
    /// What a program counting every frame on veth1 must count, by kind.
    pub fn expected(&self) -> [u64; 7] {
        let udp = self.udp_sent.iter().sum();
        [0, self.pings.sent, self.syns, udp, 0, 0, 0]
    }

    /// Prints it, for the learner.
    pub fn show(&self, lab: &bpflab_guest::Lab) {
        let [p0, p1] = UDP_PORTS;
        lab.print(format!(
            "sent from veth0: {} UDP datagrams to port {p0}, {} to port {p1}; {} TCP SYNs to \
             port {TCP_PORT} (closed: each refused); {} echo requests",
            self.udp_sent[0], self.udp_sent[1], self.syns, self.pings.sent
        ));
        lab.print(format!(
            "arrived: {} datagrams at port {p0}, {} at port {p1}; {} echo replies at veth0, \
             {} of them from veth1's kernel (its Icmp InEchos)",
            self.udp_received[0], self.udp_received[1], self.pings.replies, self.far_kernel_echoes
        ));
    }
}

/// Sends the workload from veth0 to veth1's address; a datagram that has not come
/// within `patience` is taken as lost.
pub fn send(pair: &VethPair, patience: Duration) -> anyhow::Result<Sent> {
    let far = pair.far.addr;
    // Sockets made in veth1's namespace stay there, whichever thread uses them.
    let (receivers, echoes_before) = pair.netns.run(|| {
        let receivers = UDP_PORTS.map(|port| {
            UdpSocket::bind((far, port)).with_context(|| format!("binding UDP {port}"))
        });
        let [a, b] = receivers;
        Ok(([a?, b?], snmp_counter("Icmp", "InEchos")?))
    })?;
    let sender = UdpSocket::bind((pair.near.addr, 0)).context("binding the UDP sender")?;
    let mut udp_received = [0; 2];
    for (received, receiver) in udp_received.iter_mut().zip(&receivers) {
        *received = udp_across(&sender, receiver, DATAGRAMS, 32, patience)?;
    }
    let syns = refused_connects(SocketAddr::from((far, TCP_PORT)), CONNECTS)?;
    let pings = ping(far, PINGS, Duration::from_millis(500))?;
    let echoes_after = pair.netns.run(|| snmp_counter("Icmp", "InEchos"))?;
    Ok(Sent {
        udp_sent: [DATAGRAMS as u64; 2],
        udp_received,
        syns,
        pings,
        far_kernel_echoes: echoes_after - echoes_before,
    })
}

/// Connects to `to`, where nothing listens, `count` times: one SYN each, each refused
/// (the far kernel's RST). Returns the SYNs sent; a connection made, or another error,
/// is an error.
fn refused_connects(to: SocketAddr, count: u64) -> anyhow::Result<u64> {
    for _ in 0..count {
        match TcpStream::connect_timeout(&to, Duration::from_secs(5)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Ok(_) => anyhow::bail!("a connection to {to} was accepted: nothing was to listen"),
            Err(e) => return Err(e).with_context(|| format!("connecting to {to}")),
        }
    }
    Ok(count)
}

/// The program's two maps: frames by kind, verdicts by action.
pub fn read_maps(bpf: &Ebpf) -> anyhow::Result<([u64; 7], [u64; 5])> {
    let counts: Array<_, u64> =
        Array::try_from(bpf.map("counts").context("xdp.bpf.o has no map `counts`")?)?;
    let verdicts: Array<_, u64> = Array::try_from(
        bpf.map("verdicts")
            .context("xdp.bpf.o has no map `verdicts`")?,
    )?;
    let mut kinds = [0; 7];
    for (i, n) in kinds.iter_mut().enumerate() {
        *n = counts.get(&(i as u32), 0)?;
    }
    let mut actions = [0; 5];
    for (i, n) in actions.iter_mut().enumerate() {
        *n = verdicts.get(&(i as u32), 0)?;
    }
    Ok((kinds, actions))
}

/// `counts` as the learner reads them: `ICMP 3, TCP 7, UDP 6` (zeros left out).
pub fn show_counts(names: &[&str], counts: &[u64]) -> String {
    let shown: Vec<String> = names
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    match shown.is_empty() {
        true => "none".into(),
        false => shown.join(", "),
    }
}
