//! ICMP echo, as `ping` does it: requests sent on a raw ICMP socket, each reply matched
//! to its request by identifier and sequence number, its payload compared.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// The identifier of bpflab's echo requests.
pub const IDENTIFIER: u16 = 0x4242;
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const PAYLOAD: usize = 56;

/// What a run of pings came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pings {
    /// Echo requests sent.
    pub sent: u64,
    /// Echo replies received, each from the address pinged, to one request and with its
    /// payload.
    pub replies: u64,
}

/// Sends `count` echo requests to `to`, one at a time, each waiting up to `patience` for
/// its reply (a lost one is counted as lost, not as an error).
pub fn ping(to: Ipv4Addr, count: u16, patience: Duration) -> anyhow::Result<Pings> {
    // SAFETY: socket(2) with constant arguments; the descriptor it returns is owned by
    // the OwnedFd made from it.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_INET, SOCK_RAW, ICMP)");
    }
    // SAFETY: `fd` is a new, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut pings = Pings {
        sent: 0,
        replies: 0,
    };
    for seq in 1..=count {
        let request = echo_request(seq);
        send_to(&fd, &request, to)?;
        pings.sent += 1;
        if wait_reply(&fd, to, &request, patience)? {
            pings.replies += 1;
        }
    }
    Ok(pings)
}

/// An echo request with sequence number `seq` and a fixed payload, its checksum set.
pub fn echo_request(seq: u16) -> Vec<u8> {
    let mut packet = vec![ECHO_REQUEST, 0, 0, 0];
    packet.extend_from_slice(&IDENTIFIER.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend((0..PAYLOAD).map(|i| i as u8));
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn send_to(fd: &OwnedFd, packet: &[u8], to: Ipv4Addr) -> anyhow::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(to).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `packet` and `addr` are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("pinging {to}"));
    }
    Ok(())
}

/// Whether the reply to `request` comes from `from` within `patience`. A raw ICMP socket
/// receives every ICMP packet the host gets, IP header first: others are passed over.
fn wait_reply(
    fd: &OwnedFd,
    from: Ipv4Addr,
    request: &[u8],
    patience: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + patience;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the length given.
        let rc = unsafe { libc::poll(&mut poll, 1, left.as_millis().max(1) as libc::c_int) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()).context("poll on the ICMP socket");
        }
        if rc == 0 {
            continue;
        }
        // SAFETY: `buf` has room for the length given.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("reading the ICMP socket");
        }
        if is_reply_to(&buf[..n as usize], from, request) {
            return Ok(true);
        }
    }
}

/// Whether `packet` (IPv4 header, then ICMP) is `from`'s echo reply to `request`: type 0,
/// the request's identifier, sequence and payload, a checksum that holds.
fn is_reply_to(packet: &[u8], from: Ipv4Addr, request: &[u8]) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let header = usize::from(first & 0xf) * 4;
    if packet.len() < header + 8 || packet[12..16] != from.octets() {
        return false;
    }
    let icmp = &packet[header..];
    icmp[0] == ECHO_REPLY && icmp[4..] == request[4..] && checksum(icmp) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_checks_and_its_reply_is_recognised() {
        let request = echo_request(3);
        assert_eq!(checksum(&request), 0);
        let mut reply = request.clone();
        reply[0] = ECHO_REPLY;
        reply[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&reply);
        reply[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut packet = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 42, 0, 2, 10, 42, 0, 1,
        ];
        packet.extend_from_slice(&reply);
        assert!(is_reply_to(&packet, Ipv4Addr::new(10, 42, 0, 2), &request));
        assert!(!is_reply_to(&packet, Ipv4Addr::new(10, 42, 0, 3), &request));
        assert!(!is_reply_to(
            &packet,
            Ipv4Addr::new(10, 42, 0, 2),
            &echo_request(4)
        ));
    }
}
