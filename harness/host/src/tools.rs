//! Host programs bpflab runs, and what to tell the user when one is missing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::bail;

/// A program as bpflab runs it: the host's, or one unpacked in bpflab's cache, which
/// needs its libraries named (`LD_LIBRARY_PATH`) and may need arguments of its own
/// (QEMU's `-L` for its firmware) before the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The executable.
    pub path: PathBuf,
    /// Arguments that come first.
    pub args: Vec<OsString>,
    /// Environment variables to set.
    pub env: Vec<(OsString, OsString)>,
}

impl Program {
    /// The host's program at `path`, run as it is.
    pub fn host(path: PathBuf) -> Program {
        Program {
            path,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A command that runs it, with its own arguments and environment set.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.args);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }
}

/// Finds `program` on PATH, or fails with the one line that installs it.
pub fn require(program: &str, debian_package: &str) -> anyhow::Result<PathBuf> {
    match which(program) {
        Some(path) => Ok(path),
        None => bail!(
            "{program} is not installed; install it with: sudo apt-get install {debian_package}"
        ),
    }
}

/// `program`'s path if it is on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// The command prefix that runs a program in a private mount namespace of its own:
/// `unshare --mount` for root, with an unprivileged user namespace (`--user
/// --map-root-user`) for everyone else.
pub fn private_mount_namespace() -> anyhow::Result<Vec<std::ffi::OsString>> {
    let unshare = require("unshare", "util-linux")?;
    let mut args = vec![unshare.into_os_string()];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        args.extend(["--user".into(), "--map-root-user".into()]);
    }
    args.push("--mount".into());
    Ok(args)
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = require("bpflab-no-such-tool", "bpflab-pkg")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sudo apt-get install bpflab-pkg"), "{err}");
        assert!(which("sh").is_some());
    }
}
