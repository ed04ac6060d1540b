//! Packets inside the guest: a packet socket (`AF_PACKET`) that receives every frame
//! crossing an interface, as tcpdump's does, for socket filters to run on.
//!
//! A socket filter decides which packets a socket receives. On a packet socket bound to
//! `lo`, each packet the workload sends crosses twice: once leaving (`PACKET_OUTGOING`)
//! and once arriving (`PACKET_HOST`), and the filter runs on both copies.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// `SO_ATTACH_FILTER` and `SO_GET_FILTER` (the same number) in `asm-generic/socket.h`,
/// which x86-64 and arm64 use.
const SO_ATTACH_FILTER: libc::c_int = 26;
const SO_GET_FILTER: libc::c_int = SO_ATTACH_FILTER;
/// `linux/if_packet.h`.
const PACKET_OUTGOING: u8 = 4;
const PACKET_STATISTICS: libc::c_int = 6;
/// `ETH_P_ALL`: every protocol, in network byte order as `bind` and `socket` want it.
const ALL_PROTOCOLS: u16 = (libc::ETH_P_ALL as u16).to_be();

/// One classic BPF instruction (`struct sock_filter`): `code`, `jt`, `jf`, `k`, as
/// `tcpdump -dd` prints them.
pub type ClassicInsn = libc::sock_filter;

/// What a packet socket received, by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Copies of packets leaving the interface (`PACKET_OUTGOING`).
    pub outgoing: u64,
    /// Copies of packets arriving on it (every other packet type).
    pub incoming: u64,
    /// Packets the filter let through but the socket had no room for
    /// (`PACKET_STATISTICS`' `tp_drops`): must be 0 for the counts to be complete.
    pub dropped: u32,
}

impl Received {
    /// Both directions together.
    pub fn total(&self) -> u64 {
        self.outgoing + self.incoming
    }
}

/// A raw packet socket, receiving nothing until [`PacketSocket::listen_on`].
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens an `AF_PACKET` `SOCK_RAW` socket for no protocol: it receives nothing yet, so
    /// that no packet reaches it before its filter is attached.
    pub fn open() -> anyhow::Result<PacketSocket> {
        // SAFETY: socket(2) with constant arguments; the descriptor it returns is owned
        // by the OwnedFd made from it, and by nothing else.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket(AF_PACKET, SOCK_RAW)");
        }
        // SAFETY: `fd` is a new, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSocket { fd })
    }

    /// Attaches a classic BPF program with `SO_ATTACH_FILTER`. The kernel checks it
    /// (jumps forward only, within the program, ending in `ret`) and refuses it with
    /// EINVAL otherwise.
    pub fn attach_classic(&self, program: &[ClassicInsn]) -> anyhow::Result<()> {
        let len = u16::try_from(program.len())
            .context("a classic program has at most 4096 instructions")?;
        let fprog = libc::sock_fprog {
            len,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies
        // the instructions and never writes through the pointer.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_ATTACH_FILTER,
                (&raw const fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .context("the kernel refused the classic BPF program (SO_ATTACH_FILTER)");
        }
        Ok(())
    }

    /// The classic program attached to the socket, as the kernel kept it (`SO_GET_FILTER`).
    /// Empty for an eBPF program, which has no classic form.
    pub fn classic_filter(&self) -> anyhow::Result<Vec<ClassicInsn>> {
        // The length is counted in instructions, not bytes: 0 asks for the count.
        let mut len: libc::socklen_t = 0;
        let get = |buf: *mut libc::c_void, len: &mut libc::socklen_t| {
            // SAFETY: `buf` is null with `len` 0, or has room for `len` instructions.
            let rc = unsafe {
                libc::getsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    SO_GET_FILTER,
                    buf,
                    len,
                )
            };
            match rc {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()).context("getsockopt(SO_GET_FILTER)"),
            }
        };
        get(std::ptr::null_mut(), &mut len)?;
        let zero = ClassicInsn {
            code: 0,
            jt: 0,
            jf: 0,
            k: 0,
        };
        let mut program = vec![zero; len as usize];
        get(program.as_mut_ptr().cast(), &mut len)?;
        program.truncate(len as usize);
        Ok(program)
    }

    /// Starts receiving every protocol's frames on `interface` (e.g. `"lo"`).
    pub fn listen_on(&self, interface: &str) -> anyhow::Result<()> {
        let name = std::ffi::CString::new(interface).context("an interface name has no NUL")?;
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("no network interface {interface}"));
        }
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ALL_PROTOCOLS;
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("binding the packet socket to {interface}"));
        }
        Ok(())
    }

    /// Reads every packet the socket has queued, counting each by direction, until
    /// `expected` have come (or `patience` passed without them), then whatever else is
    /// queued: more than expected is counted too, never hidden.
    pub fn drain(&self, expected: u64, patience: Duration) -> anyhow::Result<Received> {
        let mut received = Received::default();
        let deadline = Instant::now() + patience;
        loop {
            self.read_queued(&mut received)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if received.total() >= expected || left.is_zero() {
                break;
            }
            self.wait_readable(left.min(Duration::from_millis(50)))?;
        }
        received.dropped = self.drops()?;
        Ok(received)
    }

    fn read_queued(&self, received: &mut Received) -> anyhow::Result<()> {
        let mut frame = vec![0u8; 65536];
        loop {
            // SAFETY: an all-zero sockaddr_ll is valid, and recvfrom fills at most `len`.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `frame` has room for the length given; `from` and `len` as above.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    frame.as_mut_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let error = std::io::Error::last_os_error();
                return match error.kind() {
                    std::io::ErrorKind::WouldBlock => Ok(()),
                    _ => Err(error).context("reading the packet socket"),
                };
            }
            match from.sll_pkttype {
                PACKET_OUTGOING => received.outgoing += 1,
                _ => received.incoming += 1,
            }
        }
    }

    fn wait_readable(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the length given.
        let rc = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
        match rc {
            -1 => Err(std::io::Error::last_os_error()).context("poll on the packet socket"),
            _ => Ok(()),
        }
    }

    /// Packets dropped for want of room since the last call (`tp_drops`, reset on read).
    fn drops(&self) -> anyhow::Result<u32> {
        // struct tpacket_stats { unsigned int tp_packets; unsigned int tp_drops; }
        let mut stats = [0u32; 2];
        let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
        // SAFETY: `stats` has room for the length given.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                stats.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("getsockopt(PACKET_STATISTICS)");
        }
        Ok(stats[1])
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
