//! Which Debian release bpflab takes tools from: the newest whose C library the host's
//! can stand in for. The unpacked programs run with the host's glibc (its dynamic loader
//! and `libc.so.6`), which runs anything built against the same or an older glibc, never
//! a newer one.

use anyhow::bail;

use super::lock::{Release, ToolsLock};
use crate::arch::Arch;

/// `_CS_GNU_LIBC_VERSION`, by its value: the C libraries that are not glibc do not name it.
const CS_GNU_LIBC_VERSION: libc::c_int = 2;

/// The host's glibc version (`2.36`), or `None` on a host without glibc (musl).
pub fn host_glibc() -> Option<String> {
    // SAFETY: confstr with a null buffer only returns the length needed.
    let len = unsafe { libc::confstr(CS_GNU_LIBC_VERSION, std::ptr::null_mut(), 0) };
    if len == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    // SAFETY: buf has the length confstr asked for.
    unsafe { libc::confstr(CS_GNU_LIBC_VERSION, buf.as_mut_ptr().cast(), len) };
    let text = String::from_utf8_lossy(&buf);
    // "glibc 2.36"
    let version = text.trim_end_matches('\0').rsplit(' ').next()?.to_string();
    Some(version)
}

/// (major, minor) of a version like `2.36`.
fn parse(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The newest release of `lock` for `host` whose glibc is no newer than `glibc`.
pub fn choose<'a>(
    lock: &'a ToolsLock,
    host: Arch,
    glibc: Option<&str>,
) -> anyhow::Result<&'a Release> {
    let arch = host.debian_arch();
    let mut pinned: Vec<&Release> = lock.releases.iter().filter(|r| r.arch == arch).collect();
    pinned.sort_by_key(|r| parse(&r.glibc));
    let names = || {
        pinned
            .iter()
            .map(|r| format!("{} (glibc {})", r.release, r.glibc))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if pinned.is_empty() {
        bail!(
            "{} pins no Debian release for {arch} hosts: run `bpflab tools update`",
            super::lock::lock_path().display()
        );
    }
    let Some(glibc) = glibc else {
        bail!(
            "this host has no GNU C library, and the programs bpflab can unpack from Debian \
             ({}) need one: install QEMU, clang and libbpf's headers with the host's package \
             manager",
            names()
        );
    };
    let host_version = parse(glibc);
    match pinned
        .iter()
        .rev()
        .find(|r| host_version.is_some() && parse(&r.glibc) <= host_version)
    {
        Some(release) => Ok(release),
        None => bail!(
            "this host's glibc {glibc} is older than every Debian release bpflab can unpack \
             tools from ({}): install QEMU, clang and libbpf's headers with the host's \
             package manager",
            names()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> ToolsLock {
        let release = |name: &str, glibc: &str| Release {
            release: name.into(),
            arch: "amd64".into(),
            glibc: glibc.into(),
        };
        ToolsLock {
            releases: vec![
                release("trixie", "2.41"),
                release("bullseye", "2.31"),
                release("bookworm", "2.36"),
            ],
            packages: vec![],
        }
    }

    #[test]
    fn the_newest_release_the_hosts_glibc_can_run_is_chosen() {
        let lock = lock();
        let pick = |glibc| choose(&lock, Arch::X86_64, glibc).map(|r| r.release.clone());
        assert_eq!(pick(Some("2.36")).unwrap(), "bookworm");
        assert_eq!(pick(Some("2.39")).unwrap(), "bookworm");
        assert_eq!(pick(Some("2.41")).unwrap(), "trixie");
        assert_eq!(pick(Some("2.31")).unwrap(), "bullseye");
        let err = pick(Some("2.28")).unwrap_err().to_string();
        assert!(err.contains("glibc 2.28 is older than every"), "{err}");
        assert!(err.contains("bullseye (glibc 2.31)"), "{err}");
        let err = pick(None).unwrap_err().to_string();
        assert!(err.contains("no GNU C library"), "{err}");
        assert!(choose(&lock, Arch::Arm64, Some("2.36")).is_err());
    }

    #[test]
    fn this_hosts_glibc_is_read() {
        let version = host_glibc().expect("the tests run on glibc");
        assert!(parse(&version).is_some(), "{version}");
    }
}
