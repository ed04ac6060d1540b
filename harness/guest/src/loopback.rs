//! The guest's loopback interface (`lo`), brought up only for the lessons that talk over
//! it (`loopback = true` in their `lesson.toml`): a fresh kernel has it down, and bringing
//! it up costs about 12 ms under emulation, which lesson 1 has no use for.

use anyhow::Context as _;
use bpflab_protocol::Outcome;

/// Whether `lo` is up yet: it stays up once a lesson brought it up.
#[derive(Debug, Default)]
pub struct Loopback {
    up: bool,
}

impl Loopback {
    /// Brings `lo` up, unless it is already.
    pub fn bring_up(&mut self) -> anyhow::Result<()> {
        if !self.up {
            bring_up()?;
            self.up = true;
        }
        Ok(())
    }

    /// `outcome`, with what to do added to a failure that a socket on a loopback still
    /// down explains: a lesson that talks over 127.0.0.1 without saying so in its
    /// `lesson.toml` fails with ENETUNREACH (connecting) or EADDRNOTAVAIL (binding), in
    /// words that name the loopback or its address (the guest's helpers all do). A
    /// failure on another interface (lesson 42's veth pair) is left as it is.
    pub fn explain(&self, outcome: Outcome) -> Outcome {
        let on_loopback = |reason: &str| {
            (reason.contains("(os error 101)") || reason.contains("(os error 99)"))
                && (reason.contains("127.0.0.1") || reason.contains("loopback"))
        };
        match outcome {
            Outcome::Failed(reason) if !self.up && on_loopback(&reason) => {
                Outcome::Failed(format!(
                    "{reason}; the loopback interface is down: a lesson that talks over \
                     127.0.0.1 says `loopback = true` in its lesson.toml"
                ))
            }
            other => other,
        }
    }
}

/// Brings the loopback interface up (the guest's only network interface). A fresh kernel
/// has `lo` down; only an ioctl is needed, no `ip` tool.
fn bring_up() -> anyhow::Result<()> {
    // SAFETY: a socket used only for the ioctls below, closed at the end; `ifreq` is
    // zeroed and its name is a NUL-terminated "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error()).context("socket() for SIOCSIFFLAGS");
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(sock);
        if rc != 0 {
            return Err(err).context("bringing up the loopback interface");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_failure_on_a_loopback_still_down_says_what_to_declare() {
        let down = Loopback::default();
        let unreachable =
            Outcome::Failed("connecting over loopback: Network unreachable (os error 101)".into());
        let explained = down.explain(unreachable.clone()).reason().to_string();
        assert!(explained.starts_with("connecting over loopback: Network unreachable"));
        assert!(
            explained.ends_with("says `loopback = true` in its lesson.toml"),
            "{explained}"
        );
        let unbound = Outcome::Failed(
            "binding a TCP listener on 127.0.0.1:80: Address not available (os error 99)".into(),
        );
        assert!(down.explain(unbound).reason().contains("loopback = true"));
        // The same error on another interface is not the loopback's.
        let veth =
            Outcome::Failed("connecting to 10.42.0.2:9: Network unreachable (os error 101)".into());
        assert_eq!(down.explain(veth.clone()), veth);
        // Other failures, other outcomes, and any failure once `lo` is up stay as they are.
        let other = Outcome::Failed("3 processes created but 2 greetings seen".into());
        assert_eq!(down.explain(other.clone()), other);
        let passed = Outcome::Passed("30 messages".into());
        assert_eq!(down.explain(passed.clone()), passed);
        let up = Loopback { up: true };
        assert_eq!(up.explain(unreachable.clone()), unreachable);
    }
}
