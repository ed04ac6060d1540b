//! Host programs bpflab runs, and what to tell the user when one is missing.

use std::path::PathBuf;

use anyhow::bail;

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
