//! Building a kernel runs the source tree's own Makefiles and scripts. Even from a pinned,
//! verified source, bpflab runs them with as little power as it can: in a network
//! namespace of their own (no network at all), and, when bpflab runs as root, as an
//! unprivileged user that owns nothing but the build tree.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

/// The unprivileged user and group root's builds run as (`nobody` on Debian and most
/// distributions; only the number matters).
const BUILD_ID: u32 = 65534;

/// How build commands are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sandbox {
    /// Root drops to this user and group; others keep who they are (they have nothing
    /// more to give up), inside a user namespace that lets them make a network namespace.
    drop_to: Option<u32>,
    /// Our own ids, mapped into the user namespace of an unprivileged build.
    uid: u32,
    gid: u32,
}

impl Sandbox {
    /// The sandbox for this process's builds.
    pub fn for_builds() -> Sandbox {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Sandbox {
            drop_to: (uid == 0).then_some(BUILD_ID),
            uid,
            gid,
        }
    }

    /// Whether builds run as another user, who must be able to reach and own the tree.
    pub fn drops_privileges(&self) -> bool {
        self.drop_to.is_some()
    }

    /// Hands the build tree to the build user (a no-op when privileges are not dropped).
    pub fn give_tree(&self, tree: &Path) -> anyhow::Result<()> {
        let Some(id) = self.drop_to else {
            return Ok(());
        };
        for entry in walkdir::WalkDir::new(tree) {
            let entry = entry.with_context(|| format!("walking {}", tree.display()))?;
            // lchown: a link is handed over itself, never what it points to.
            std::os::unix::fs::lchown(entry.path(), Some(id), Some(id))
                .with_context(|| format!("handing {} to the build user", entry.path().display()))?;
        }
        Ok(())
    }

    /// Makes `cmd` run confined: no network, and no root.
    pub fn confine(&self, cmd: &mut Command) {
        let sandbox = *self;
        // SAFETY: the closure runs in the forked child before exec and only makes raw
        // system calls (unshare, open/write/close on /proc, setgroups, setresgid,
        // setresuid, prctl) on stack data: no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || sandbox.enter());
        }
    }

    /// In the child: leave the network, then give up root.
    fn enter(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        match self.drop_to {
            Some(id) => {
                // SAFETY: plain system calls on values, see `confine`.
                unsafe {
                    check(libc::unshare(libc::CLONE_NEWNET))?;
                    check(libc::setgroups(0, std::ptr::null()))?;
                    check(libc::setresgid(id, id, id))?;
                    check(libc::setresuid(id, id, id))?;
                }
            }
            None => {
                // SAFETY: as above.
                check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) })?;
                // Map ourselves to ourselves: files keep their owner, nothing is gained.
                write_proc(c"/proc/self/setgroups", b"deny")?;
                write_proc(c"/proc/self/uid_map", id_map(self.uid).as_bytes_prefix())?;
                write_proc(c"/proc/self/gid_map", id_map(self.gid).as_bytes_prefix())?;
            }
        }
        // SAFETY: as above.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }
}

/// `"<id> <id> 1"` in a fixed buffer (no allocation between fork and exec).
struct IdMap {
    buf: [u8; 32],
    len: usize,
}

impl IdMap {
    fn as_bytes_prefix(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn id_map(id: u32) -> IdMap {
    let mut map = IdMap {
        buf: [0; 32],
        len: 0,
    };
    let push_number = |map: &mut IdMap, mut n: u32| {
        let mut digits = [0u8; 10];
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for d in digits[..count].iter().rev() {
            map.buf[map.len] = *d;
            map.len += 1;
        }
    };
    push_number(&mut map, id);
    map.buf[map.len] = b' ';
    map.len += 1;
    push_number(&mut map, id);
    for b in b" 1" {
        map.buf[map.len] = *b;
        map.len += 1;
    }
    map
}

fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path and a buffer that outlives the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        if written != data.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_are_written_without_allocating() {
        assert_eq!(id_map(0).as_bytes_prefix(), b"0 0 1");
        assert_eq!(
            id_map(4_294_967_295).as_bytes_prefix(),
            b"4294967295 4294967295 1"
        );
    }

    /// A confined command sees no network device but a loopback of its own, and is not
    /// root.
    #[test]
    fn a_confined_command_has_no_network_and_no_root() {
        let sandbox = Sandbox::for_builds();
        let mut cmd = Command::new("sh");
        // /proc/net is the calling process's network namespace (/sys/class/net is not).
        cmd.args([
            "-c",
            "id -u; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
        ]);
        sandbox.confine(&mut cmd);
        let output = cmd.output().expect("runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines = stdout.lines();
        let uid: u32 = lines.next().unwrap().parse().unwrap();
        assert_ne!(uid, 0, "builds never run as root");
        let devices: Vec<&str> = lines.collect();
        assert_eq!(devices, ["lo"], "only a loopback device of its own");
    }
}
