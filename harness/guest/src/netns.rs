//! Network namespaces inside the guest, and a veth pair between two of them: the wire
//! the packet lessons send over (the guest has no network device to the host).
//!
//! A network namespace is per thread: [`Netns::run`] runs a closure on a thread that
//! entered the namespace (`setns`), so the agent's own thread never leaves its own.
//! Sockets opened there stay in that namespace wherever they are used afterwards.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::Context as _;

use crate::netlink::{Mac, Rtnetlink};

/// A network namespace, alive while this holds its descriptor.
pub struct Netns {
    fd: OwnedFd,
}

impl Netns {
    /// A new, empty network namespace (only a `lo`, down): made by a thread that
    /// `unshare`s its own and hands back a descriptor of it.
    pub fn new() -> anyhow::Result<Netns> {
        std::thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<Netns> {
                // SAFETY: unshare(2) changes only this thread's network namespace, which
                // ends with the thread; the namespace lives on through the descriptor.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error())
                        .context("unshare(CLONE_NEWNET) (CONFIG_NET_NS)");
                }
                let file = std::fs::File::open("/proc/thread-self/ns/net")
                    .context("opening /proc/thread-self/ns/net")?;
                Ok(Netns { fd: file.into() })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread making a network namespace panicked"))?
        })
    }

    /// Its descriptor, for `IFLA_NET_NS_FD`.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Runs `f` in this namespace, on a thread of its own, and returns what it returned.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns(2) on a namespace descriptor this struct owns; it moves
                // only this thread, which ends when `f` returns.
                if unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error()).context("setns(CLONE_NEWNET)");
                }
                f()
            })
            .join()
            .map_err(|_| anyhow::anyhow!("a thread in the network namespace panicked"))?
        })
    }
}

/// One end of a veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// Its interface name.
    pub name: &'static str,
    /// Its index, in its namespace.
    pub index: u32,
    /// Its MAC address.
    pub mac: Mac,
    /// Its IPv4 address (in a /24 shared with the other end).
    pub addr: Ipv4Addr,
}

/// A veth pair: `near` in the calling thread's namespace, `far` in `netns`. Addressed,
/// up, with IPv6 off and permanent neighbour entries on both ends, so that neither
/// kernel sends anything on the wire of its own accord (no router solicitations, MLD,
/// ARP): every packet on it is one a lesson sent.
pub struct VethPair {
    /// The end in the agent's namespace.
    pub near: End,
    /// The end in the other namespace.
    pub far: End,
    /// The other namespace.
    pub netns: Netns,
}

impl VethPair {
    /// Makes it. [`crate::netlink::NoVeth`] if the kernel has no veth driver.
    pub fn create() -> anyhow::Result<VethPair> {
        let netns = Netns::new()?;
        let mut near = End {
            name: "veth0",
            index: 0,
            mac: [0x02, 0, 0, 0, 0, 0x01],
            addr: Ipv4Addr::new(10, 42, 0, 1),
        };
        let mut far = End {
            name: "veth1",
            index: 0,
            mac: [0x02, 0, 0, 0, 0, 0x02],
            addr: Ipv4Addr::new(10, 42, 0, 2),
        };
        let mut rtnl = Rtnetlink::open()?;
        rtnl.create_veth((near.name, near.mac), (far.name, far.mac), netns.raw_fd())?;
        near.index = configure(&mut rtnl, near, far)?;
        far.index = netns.run(|| configure(&mut Rtnetlink::open()?, far, near))?;
        Ok(VethPair { near, far, netns })
    }
}

impl Drop for VethPair {
    /// Deletes the pair at once (both ends go together), so that the next lesson of the
    /// boot can make its own of the same names: a namespace's devices would otherwise go
    /// only when the kernel gets round to cleaning the namespace up.
    fn drop(&mut self) {
        if let Ok(mut rtnl) = Rtnetlink::open() {
            rtnl.delete_link(self.near.index).ok();
        }
    }
}

/// Turns IPv6 off on `end`, gives it its address, brings it up and tells it where `other`
/// is; returns its index. Called in `end`'s namespace.
fn configure(rtnl: &mut Rtnetlink, end: End, other: End) -> anyhow::Result<u32> {
    let index = interface_index(end.name)?;
    // Before it is up, so that it never sends a router solicitation or MLD report. A
    // kernel without IPv6 has no such file, and nothing to turn off.
    let ipv6 = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", end.name);
    if std::path::Path::new(&ipv6).exists() {
        std::fs::write(&ipv6, "1").with_context(|| format!("writing {ipv6}"))?;
    }
    rtnl.add_address(index, end.addr, 24)?;
    rtnl.set_up(index)?;
    rtnl.add_neighbour(index, other.addr, other.mac)?;
    Ok(index)
}

/// The index of interface `name` in the calling thread's namespace.
pub fn interface_index(name: &str) -> anyhow::Result<u32> {
    let c_name = std::ffi::CString::new(name).context("an interface name has no NUL")?;
    // SAFETY: `c_name` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("no network interface {name}"));
    }
    Ok(index)
}

/// A counter of the calling thread's namespace from `/proc/thread-self/net/snmp`, e.g.
/// (`"Icmp"`, `"InEchos"`): echo requests its kernel received (and answered).
pub fn snmp_counter(group: &str, name: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp")
        .context("reading /proc/thread-self/net/snmp")?;
    parse_snmp(&text, group, name)
        .with_context(|| format!("/proc/net/snmp has no counter {group} {name}"))
}

/// `group`'s two lines in snmp's format: the names, then the values.
fn parse_snmp(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_counters_are_found_by_name() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nIcmp: InMsgs InErrors InEchos\n\
                    Icmp: 5 0 3\nIcmpMsg: InType8\nIcmpMsg: 3\n";
        assert_eq!(parse_snmp(text, "Icmp", "InEchos"), Some(3));
        assert_eq!(parse_snmp(text, "Icmp", "OutEchos"), None);
    }
}
