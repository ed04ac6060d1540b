//! Lesson 43's wire and workload: the loopback device `lo`, where every packet the
//! workload sends leaves (egress) and comes straight back in (ingress), so one device
//! shows a tc program both directions; how the programs are attached (TCX or netlink, as
//! aya 0.14 chooses); and traffic whose every packet is known: UDP datagrams to two
//! ports, TCP SYNs to a closed port, echo requests. Nothing else uses `lo` while the
//! lesson runs, so what the programs count can be checked exactly.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::Context as _;
use aya::maps::Array;
use aya::programs::tc::{self, SchedClassifier, TcAttachType, TcError};
use aya::programs::ProgramError;
use aya::util::KernelVersion;
use aya::Ebpf;
use bpflab_guest::echo::{ping, Pings};
use bpflab_guest::netns::snmp_counter;
use bpflab_guest::traffic::udp_across;
use bpflab_guest::Unsupported;

/// The device the programs are attached to.
pub const DEVICE: &str = "lo";
const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// The UDP ports datagrams are sent to, how many to each and of what size, and the port
/// `rewrite_port` sends those to port 9 to instead.
pub const UDP_PORTS: [u16; 2] = [9, 4242];
pub const REWRITTEN_TO: u16 = 4243;
pub const DATAGRAMS: usize = 3;
const DATAGRAM_SIZE: usize = 32;
/// Connections tried to a TCP port nothing listens on: a SYN and the kernel's RST each
/// (a whole conversation's count of segments would depend on how its ACKs fall in time).
pub const TCP_PORT: u16 = 80;
pub const CONNECTS: u64 = 2;
/// Echo requests sent.
pub const PINGS: u16 = 3;
/// What a packet weighs in skb->len, from its Ethernet header (14 bytes) on: a datagram
/// (IPv4 20, UDP 8, payload 32) and an echo request or reply (IPv4 20, ICMP 8, and
/// the 56 bytes of payload `bpflab_guest::echo` sends, as ping does).
pub const UDP_BYTES: u64 = 14 + 20 + 8 + DATAGRAM_SIZE as u64;
pub const ICMP_BYTES: u64 = 14 + 20 + 8 + 56;

/// The kinds of packet the programs count (`counts` in tc.bpf.c), in its order.
pub const KINDS: [&str; 7] = ["ARP", "ICMP", "TCP", "UDP", "other IPv4", "IPv6", "other"];
pub const ICMP: usize = 1;
pub const TCP: usize = 2;
pub const UDP: usize = 3;
/// tc's actions (`verdicts` in tc.bpf.c), by value.
pub const ACTIONS: [&str; 8] = [
    "TC_ACT_OK",
    "TC_ACT_RECLASSIFY",
    "TC_ACT_SHOT",
    "TC_ACT_PIPE",
    "TC_ACT_STOLEN",
    "TC_ACT_QUEUED",
    "TC_ACT_REPEAT",
    "TC_ACT_REDIRECT",
];
pub const OK: usize = 0;
pub const SHOT: usize = 2;
/// The directions, in the maps' order.
pub const EGRESS: usize = 0;
pub const INGRESS: usize = 1;

/// How a program was attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachPath {
    /// A TCX link (`BPF_LINK_CREATE` with `BPF_TCX_INGRESS` / `_EGRESS`, Linux 6.6): no
    /// qdisc, no filter; the program goes when the link's last descriptor closes.
    Tcx,
    /// A `cls_bpf` filter in direct-action mode on the `clsact` qdisc, over rtnetlink
    /// (`RTM_NEWTFILTER`), as `tc filter add dev lo ingress bpf da` makes one.
    Netlink,
}

impl AttachPath {
    /// The one aya 0.14's `SchedClassifier::attach` takes: TCX from Linux 6.6, by the
    /// running kernel's version (Ubuntu's `/proc/version_signature`, Debian's in `uname
    /// -v`, else `uname -r`), else netlink. It does not fall back from one to the other.
    pub fn aya_chooses() -> AttachPath {
        match KernelVersion::current() {
            Ok(v) if v >= KernelVersion::new(6, 6, 0) => AttachPath::Tcx,
            _ => AttachPath::Netlink,
        }
    }

    /// For the learner: how it attached to `direction`.
    pub fn describe(self, direction: TcAttachType) -> String {
        let side = format!("{direction:?}");
        match self {
            AttachPath::Tcx => format!(
                "through TCX: a bpf_link (BPF_LINK_CREATE, BPF_TCX_{}), which aya 0.14 makes on \
                 Linux 6.6 and later; no qdisc",
                side.to_uppercase()
            ),
            AttachPath::Netlink => format!(
                "through netlink: a bpf filter in direct-action mode on the clsact qdisc's {} \
                 (tc filter add dev lo {0} bpf da), which aya 0.14 makes before Linux 6.6",
                side.to_lowercase()
            ),
        }
    }
}

/// Adds the `clsact` qdisc to `lo`, where aya will attach through netlink: the filters
/// hang on it. Already there (an earlier lesson of the boot added it) is as good.
pub fn add_clsact() -> anyhow::Result<()> {
    match tc::qdisc_add_clsact(DEVICE) {
        Ok(()) => Ok(()),
        Err(TcError::NetlinkError(e)) => match os_error_kind(&e) {
            Some(ErrorKind::AlreadyExists) => Ok(()),
            // The kernel knows no qdisc kind "clsact": no module loaded, or before 4.5.
            Some(ErrorKind::NotFound | ErrorKind::Unsupported) => Err(Unsupported(format!(
                "needs the clsact qdisc (CONFIG_NET_SCH_INGRESS, Linux 4.5), which this kernel \
                 does not have, built in or loaded: {e}"
            ))
            .into()),
            _ => {
                Err(anyhow::Error::from(e).context(format!("adding the clsact qdisc to {DEVICE}")))
            }
        },
        Err(e) => {
            Err(anyhow::Error::from(e).context(format!("adding the clsact qdisc to {DEVICE}")))
        }
    }
}

fn os_error_kind(e: &aya::sys::NetlinkError) -> Option<ErrorKind> {
    e.raw_os_error()
        .map(|code| std::io::Error::from_raw_os_error(code).kind())
}

/// Loads `function` of `bpf` and attaches it to `lo`'s `direction` with aya's own
/// `attach`; returns the path it took, as the kernel shows it.
pub fn attach(
    bpf: &mut Ebpf,
    function: &str,
    direction: TcAttachType,
) -> anyhow::Result<AttachPath> {
    let program: &mut SchedClassifier = bpf
        .program_mut(function)
        .with_context(|| format!("the object has no function `{function}`"))?
        .try_into()?;
    program.load()?;
    let path = AttachPath::aya_chooses();
    if path == AttachPath::Netlink {
        add_clsact()?;
    }
    match program.attach(DEVICE, direction) {
        Ok(_) => {}
        // The kernel knows no filter kind "bpf": cls_bpf is not loaded.
        Err(ProgramError::TcError(TcError::NetlinkError(e)))
            if matches!(
                os_error_kind(&e),
                Some(ErrorKind::NotFound | ErrorKind::Unsupported)
            ) =>
        {
            return Err(Unsupported(format!(
                "needs the bpf filter in direct-action mode (CONFIG_NET_CLS_BPF, Linux 4.4), \
                 which this kernel does not have, built in or loaded: {e}"
            ))
            .into())
        }
        Err(e) => {
            return Err(anyhow::Error::from(e)
                .context(format!("attaching `{function}` to {DEVICE} {direction:?}")))
        }
    }
    // TCX lists the programs it runs (BPF_PROG_QUERY); a kernel before 6.6 does not know
    // the attach type. Either way, the kernel confirms which path was taken.
    let listed = SchedClassifier::query_tcx(DEVICE, direction).map(|(_, programs)| programs.len());
    match (path, listed) {
        (AttachPath::Tcx, Ok(n)) if n > 0 => Ok(path),
        (AttachPath::Netlink, Err(_) | Ok(0)) => Ok(path),
        (_, listed) => anyhow::bail!(
            "aya was to attach `{function}` {}, but TCX on {DEVICE} {direction:?} lists {listed:?}",
            path.describe(direction)
        ),
    }
}

/// What the workload sent, and what arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams sent to each of [`UDP_PORTS`].
    pub udp_sent: [u64; 2],
    /// Datagrams received at each of [`UDP_PORTS`], then at [`REWRITTEN_TO`].
    pub udp_received: [u64; 3],
    /// SYNs sent, each refused (a RST came back).
    pub syns: u64,
    /// The echo requests and their replies.
    pub pings: Pings,
    /// Echo requests the kernel received and answered (`Icmp InEchos`, before and after).
    pub kernel_echoes: u64,
}

impl Sent {
    /// Datagrams sent, to both ports.
    pub fn datagrams(&self) -> u64 {
        self.udp_sent.iter().sum()
    }

    /// Prints it, for the learner.
    pub fn show(&self, lab: &bpflab_guest::Lab) {
        let [p0, p1] = UDP_PORTS;
        lab.print(format!(
            "sent to 127.0.0.1: {} UDP datagrams to port {p0}, {} to port {p1}; {} TCP SYNs to \
             port {TCP_PORT} (closed: each refused); {} echo requests",
            self.udp_sent[0], self.udp_sent[1], self.syns, self.pings.sent
        ));
        let [at0, at1, at_rewritten] = self.udp_received;
        lab.print(format!(
            "arrived: {at0} datagrams at port {p0}, {at1} at port {p1}, {at_rewritten} at port \
             {REWRITTEN_TO}; {} echo replies, to {} requests the kernel received (its Icmp \
             InEchos)",
            self.pings.replies, self.kernel_echoes
        ));
    }
}

/// Sends the workload over `lo`; a datagram that has not come within `patience` is
/// taken as lost, and so is an echo reply.
pub fn send(patience: Duration) -> anyhow::Result<Sent> {
    let receiver = |port: u16| {
        UdpSocket::bind((LOCALHOST, port)).with_context(|| format!("binding UDP {port}"))
    };
    let receivers = [receiver(UDP_PORTS[0])?, receiver(UDP_PORTS[1])?];
    let rewritten = receiver(REWRITTEN_TO)?;
    let echoes_before = snmp_counter("Icmp", "InEchos")?;
    let sender = UdpSocket::bind((LOCALHOST, 0)).context("binding the UDP sender")?;
    let mut udp_received = [0; 3];
    for (received, receiver) in udp_received.iter_mut().zip(&receivers) {
        *received = udp_across(&sender, receiver, DATAGRAMS, DATAGRAM_SIZE, patience)?;
    }
    udp_received[2] = drain(&rewritten)?;
    let syns = refused_connects(SocketAddr::from((LOCALHOST, TCP_PORT)), CONNECTS)?;
    let pings = ping(LOCALHOST, PINGS, patience)?;
    let kernel_echoes = snmp_counter("Icmp", "InEchos")? - echoes_before;
    Ok(Sent {
        udp_sent: [DATAGRAMS as u64; 2],
        udp_received,
        syns,
        pings,
        kernel_echoes,
    })
}

/// The datagrams queued at `socket` now: any rewritten to it have long arrived, as the
/// wait for them at port 9 (`patience`) came after they were sent.
fn drain(socket: &UdpSocket) -> anyhow::Result<u64> {
    socket.set_nonblocking(true)?;
    let mut buf = [0u8; 2048];
    let mut received = 0;
    loop {
        match socket.recv(&mut buf) {
            Ok(_) => received += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(received),
            Err(e) => return Err(e).context("receiving at the rewritten port"),
        }
    }
}

/// Connects to `to`, where nothing listens, `count` times: one SYN each, each refused
/// (the kernel's RST). Returns the SYNs sent; a connection made, or another error, is an
/// error.
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

/// Packets and bytes of each kind, one direction.
pub type Tally = [(u64, u64); 7];

/// What the programs' maps say: by direction, the packets and bytes of each kind and
/// the verdicts; and the rewrites done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maps {
    pub counts: [Tally; 2],
    pub verdicts: [[u64; 8]; 2],
    pub rewrites: u64,
}

/// Reads them.
pub fn read_maps(bpf: &Ebpf) -> anyhow::Result<Maps> {
    let map = |name: &str| {
        bpf.map(name)
            .with_context(|| format!("the object has no map `{name}`"))
    };
    let counts: Array<_, [u64; 2]> = Array::try_from(map("counts")?)?;
    let verdicts: Array<_, u64> = Array::try_from(map("verdicts")?)?;
    // Only the object with `rewrite_port` has `rewrites`.
    let rewrites = match bpf.map("rewrites") {
        Some(map) => Array::<_, u64>::try_from(map)?.get(&0, 0)?,
        None => 0,
    };
    let mut maps = Maps {
        counts: [[(0, 0); 7]; 2],
        verdicts: [[0; 8]; 2],
        rewrites,
    };
    for direction in [EGRESS, INGRESS] {
        for (kind, tally) in maps.counts[direction].iter_mut().enumerate() {
            let [packets, bytes] = counts.get(&((direction * 7 + kind) as u32), 0)?;
            *tally = (packets, bytes);
        }
        for (action, n) in maps.verdicts[direction].iter_mut().enumerate() {
            *n = verdicts.get(&((direction * 8 + action) as u32), 0)?;
        }
    }
    Ok(maps)
}

/// A direction's tally as the learner reads it: `ICMP 6 (588 bytes), UDP 6 (444 bytes)`
/// (kinds not seen left out).
pub fn show_tally(tally: &Tally) -> String {
    let shown: Vec<String> = KINDS
        .iter()
        .zip(tally)
        .filter(|(_, (packets, _))| *packets > 0)
        .map(|(name, (packets, bytes))| format!("{name} {packets} ({bytes} bytes)"))
        .collect();
    match shown.is_empty() {
        true => "nothing".into(),
        false => shown.join(", "),
    }
}

/// A direction's verdicts: `TC_ACT_OK 13, TC_ACT_SHOT 3` (zeros left out).
pub fn show_verdicts(verdicts: &[u64; 8]) -> String {
    let shown: Vec<String> = ACTIONS
        .iter()
        .zip(verdicts)
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    match shown.is_empty() {
        true => "none".into(),
        false => shown.join(", "),
    }
}
