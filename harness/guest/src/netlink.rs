//! Just enough rtnetlink (`NETLINK_ROUTE`) to build a small network inside the guest, as
//! `ip link`, `ip addr` and `ip neigh` would: a veth pair with one end in another network
//! namespace, addresses, links up, and permanent neighbour entries (so that no ARP is
//! ever sent). Each request asks for the kernel's acknowledgement, and an error in it is
//! the request's error.
//!
//! A netlink socket belongs to the network namespace of the thread that opened it: open
//! one in [`crate::netns::Netns::run`] to configure that namespace.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::Context as _;

// linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/veth.h, linux/neighbour.h.
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWNEIGH: u16 = 28;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_PERMANENT: u16 = 0x80;
const NLA_F_NESTED: u16 = 1 << 15;
/// `struct ifinfomsg`: family, pad, type, index, flags, change.
const IFINFOMSG_LEN: usize = 16;

/// A MAC address.
pub type Mac = [u8; 6];

/// The kernel has no veth driver (`CONFIG_VETH`), built in or loaded: creating a pair is
/// refused with `EOPNOTSUPP` ("Unknown device type").
#[derive(Debug)]
pub struct NoVeth;

impl std::fmt::Display for NoVeth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "this kernel has no veth driver built in, and bpflab found no veth.ko for it to load \
             (see the note above)",
        )
    }
}

impl std::error::Error for NoVeth {}

/// One netlink message being written: its header, then the body and attributes.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16) -> Message {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Message { buf }
    }

    fn bytes(&mut self, data: &[u8]) -> &mut Message {
        self.buf.extend_from_slice(data);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        self
    }

    /// `struct ifinfomsg` for interface `index` (0: a new one), setting `flags` in `change`.
    fn ifinfo(&mut self, index: u32, flags: u32, change: u32) -> &mut Message {
        let mut info = [0u8; IFINFOMSG_LEN];
        info[4..8].copy_from_slice(&index.to_ne_bytes());
        info[8..12].copy_from_slice(&flags.to_ne_bytes());
        info[12..16].copy_from_slice(&change.to_ne_bytes());
        self.bytes(&info)
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Message {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.bytes(data)
    }

    fn name(&mut self, kind: u16, name: &str) -> &mut Message {
        let mut data = name.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    /// Starts a nested attribute; [`Message::end`] closes it.
    fn nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.attr(kind | NLA_F_NESTED, &[]);
        start
    }

    fn end(&mut self, start: usize) -> &mut Message {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// An rtnetlink socket of the calling thread's network namespace.
pub struct Rtnetlink {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnetlink {
    /// Opens one.
    pub fn open() -> anyhow::Result<Rtnetlink> {
        // SAFETY: socket(2) with constant arguments; the descriptor it returns is owned by
        // the OwnedFd made from it.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .context("socket(AF_NETLINK, NETLINK_ROUTE)");
        }
        // SAFETY: `fd` is a new, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Rtnetlink { fd, seq: 0 })
    }

    /// Creates the veth pair `name` (here, with MAC `mac`) and `peer` (MAC `peer_mac`),
    /// the peer in the network namespace `peer_netns` (`IFLA_NET_NS_FD`). [`NoVeth`] if
    /// the kernel has no veth driver.
    pub fn create_veth(
        &mut self,
        (name, mac): (&str, Mac),
        (peer, peer_mac): (&str, Mac),
        peer_netns: RawFd,
    ) -> anyhow::Result<()> {
        let mut m = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, 0, 0)
            .name(IFLA_IFNAME, name)
            .attr(IFLA_ADDRESS, &mac);
        let info = m.nest(IFLA_LINKINFO);
        m.name(IFLA_INFO_KIND, "veth");
        let data = m.nest(IFLA_INFO_DATA);
        let peer_info = m.nest(VETH_INFO_PEER);
        m.ifinfo(0, 0, 0)
            .name(IFLA_IFNAME, peer)
            .attr(IFLA_ADDRESS, &peer_mac)
            .attr(IFLA_NET_NS_FD, &(peer_netns as u32).to_ne_bytes());
        m.end(peer_info).end(data).end(info);
        match self.request(&mut m) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(NoVeth.into()),
            other => other.with_context(|| format!("creating the veth pair {name}, {peer}")),
        }
    }

    /// Deletes interface `index` (a veth's peer goes with it).
    pub fn delete_link(&mut self, index: u32) -> anyhow::Result<()> {
        let mut m = Message::new(RTM_DELLINK, 0);
        m.ifinfo(index, 0, 0);
        self.request(&mut m)
            .with_context(|| format!("deleting interface {index}"))
    }

    /// Brings interface `index` up.
    pub fn set_up(&mut self, index: u32) -> anyhow::Result<()> {
        let up = libc::IFF_UP as u32;
        let mut m = Message::new(RTM_NEWLINK, 0);
        m.ifinfo(index, up, up);
        self.request(&mut m)
            .with_context(|| format!("bringing interface {index} up"))
    }

    /// Gives interface `index` the address `addr`/`prefix`.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
        let mut m = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut ifa = [libc::AF_INET as u8, prefix, 0, 0, 0, 0, 0, 0];
        ifa[4..8].copy_from_slice(&index.to_ne_bytes());
        m.bytes(&ifa)
            .attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets());
        self.request(&mut m)
            .with_context(|| format!("adding {addr}/{prefix} to interface {index}"))
    }

    /// A permanent neighbour entry on interface `index`: `addr` is at `mac`, so the kernel
    /// never asks (ARP) for it.
    pub fn add_neighbour(&mut self, index: u32, addr: Ipv4Addr, mac: Mac) -> anyhow::Result<()> {
        let mut m = Message::new(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
        // struct ndmsg: family, pad1, pad2 (u16), ifindex, state (u16), flags, type.
        let mut nd = [0u8; 12];
        nd[0] = libc::AF_INET as u8;
        nd[4..8].copy_from_slice(&index.to_ne_bytes());
        nd[8..10].copy_from_slice(&NUD_PERMANENT.to_ne_bytes());
        m.bytes(&nd)
            .attr(NDA_DST, &addr.octets())
            .attr(NDA_LLADDR, &mac);
        self.request(&mut m)
            .with_context(|| format!("adding the neighbour {addr} on interface {index}"))
    }

    /// Sends `message` and waits for the kernel's acknowledgement: its error, if any.
    fn request(&mut self, message: &mut Message) -> std::io::Result<()> {
        self.seq += 1;
        let bytes = message.finish(self.seq);
        // SAFETY: `bytes` is a whole message of the length given.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut reply = [0u8; 8192];
        loop {
            // SAFETY: `reply` has room for the length given.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(errno) = ack(&reply[..n as usize], self.seq) {
                return match errno {
                    0 => Ok(()),
                    e => Err(std::io::Error::from_raw_os_error(e)),
                };
            }
        }
    }
}

/// The error code of the acknowledgement of request `seq` in `reply`, if it holds it
/// (0: done).
fn ack(reply: &[u8], seq: u32) -> Option<i32> {
    let mut at = 0;
    while at + 20 <= reply.len() {
        let word = |i: usize| {
            let bytes = reply
                .get(at + i..at + i + 4)
                .and_then(|b| b.try_into().ok());
            bytes.map(u32::from_ne_bytes).unwrap_or(0)
        };
        let len = word(0) as usize;
        let kind = u16::from_ne_bytes([reply[at + 4], reply[at + 5]]);
        if kind == NLMSG_ERROR && word(8) == seq {
            return Some(-(word(16) as i32));
        }
        if len < 16 {
            break;
        }
        at += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_are_measured_and_aligned() {
        let mut m = Message::new(RTM_NEWLINK, 0);
        let nest = m.nest(IFLA_LINKINFO);
        m.name(IFLA_INFO_KIND, "veth");
        m.end(nest);
        let bytes = m.finish(7).to_vec();
        assert_eq!(bytes.len(), 16 + 4 + 12);
        assert_eq!(u16::from_ne_bytes([bytes[16], bytes[17]]), 16);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
    }

    #[test]
    fn an_acknowledgement_gives_its_error() {
        let mut reply = vec![0u8; 36];
        reply[0..4].copy_from_slice(&36u32.to_ne_bytes());
        reply[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        reply[8..12].copy_from_slice(&3u32.to_ne_bytes());
        reply[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(ack(&reply, 3), Some(libc::EEXIST));
        assert_eq!(ack(&reply, 4), None);
    }
}
