//! The archive's signature on `InRelease`: the root of the chain of hashes that ends at
//! each `.deb`. Checked with `gpgv` against Debian's archive keyring when the host has
//! both (Debian and Ubuntu hosts do); said once, and skipped, when it does not.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;

use anyhow::{bail, Context as _};

use crate::tools;

/// Environment variable naming another keyring to check signatures with.
pub const KEYRING_ENV: &str = "BPFLAB_DEBIAN_KEYRING";
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Checks the OpenPGP signature of an `InRelease` file (`what` names it in errors).
pub fn verify_inrelease(text: &str, what: &str) -> anyhow::Result<()> {
    let keyring = std::env::var_os(KEYRING_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING));
    let Some(gpgv) = tools::which("gpgv").filter(|_| keyring.is_file()) else {
        static WARN: Once = Once::new();
        WARN.call_once(|| {
            crate::ui::status(format!(
                "archive signatures not checked (needs gpgv and {}: sudo apt-get install gpgv \
                 debian-archive-keyring); package hashes still are",
                keyring.display()
            ))
        });
        return Ok(());
    };
    let mut child = Command::new(gpgv)
        .arg("--keyring")
        .arg(&keyring)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running gpgv")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .context("feeding gpgv")?;
    let output = child.wait_with_output().context("waiting for gpgv")?;
    if !output.status.success() {
        bail!(
            "the signature of {what} does not verify against {}: the mirror may be tampered \
             with or out of date, or the keyring too old; nothing was used.\ngpgv said:\n{}",
            keyring.display(),
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_inrelease_is_rejected_where_gpgv_can_check() {
        if tools::which("gpgv").is_none() || !std::path::Path::new(DEFAULT_KEYRING).is_file() {
            return; // nothing to check with on this host; the run says so itself
        }
        let forged = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: stable\n\
                      -----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n";
        let err = verify_inrelease(forged, "a forged InRelease").unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}
