//! The archive's signature on `InRelease`: the root of the chain of hashes that ends at
//! each `.deb`. Verified in Rust against the distribution's archive keys, which bpflab
//! ships in `images/keys/<distribution>/` and pins by fingerprint and expiry
//! ([`super::keys`]). Nothing on the host (no `gpgv`, no keyring) is needed, and nothing
//! missing on the host weakens the check: a suite whose signature does not verify is not
//! read at all.

use std::time::SystemTime;

use anyhow::Context as _;

use super::distribution::Distribution;
use crate::openpgp::Keyring;

/// Environment variable that turns signature checks off (loudly, every time).
pub const INSECURE_ENV: &str = "BPFLAB_INSECURE_SKIP_SIGNATURES";

/// The keys a distribution's InRelease files are checked against: its shipped keys, plus
/// the keyring the user names in its keyring variable (`BPFLAB_DEBIAN_KEYRING`), for a
/// private mirror that re-signs the archive with a key of its own.
pub fn keyring(distribution: Distribution) -> anyhow::Result<Keyring> {
    let mut ring = Keyring::load(distribution.keys())?;
    let env = distribution.keyring_env();
    if let Some(path) = std::env::var_os(env) {
        let path = std::path::PathBuf::from(path);
        // Named but unreadable is an error: a typo must not quietly mean "the shipped
        // keys only".
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading the keyring {} named by {env} (unset it to trust {distribution}'s \
                 keys alone)",
                path.display()
            )
        })?;
        ring.add_keys(&bytes, &format!("{env}={}", path.display()))?;
    }
    Ok(ring)
}

/// Whether the user turned signature checks off.
pub fn insecure() -> bool {
    std::env::var_os(INSECURE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Checks the signature of an `InRelease` file of `distribution` (`what` names it in
/// errors) and returns the signed text: the only part of the file anything may be read
/// from.
pub fn verify_inrelease(
    text: &str,
    what: &str,
    distribution: Distribution,
) -> anyhow::Result<String> {
    verify_at(text, what, distribution, SystemTime::now())
}

/// [`verify_inrelease`] at a given time (tests pin it: real signed files do not change,
/// the clock does).
pub fn verify_at(
    text: &str,
    what: &str,
    distribution: Distribution,
    now: SystemTime,
) -> anyhow::Result<String> {
    if insecure() {
        crate::term::status(format!(
            "WARNING: the signature of {what} is NOT checked ({INSECURE_ENV} is set): whoever controls \
             the network between you and the mirror chooses the kernels bpflab boots and builds"
        ));
        // Still only the text inside the signed block, when there is one.
        return Ok(strip_signature(text));
    }
    let ring = keyring(distribution)?;
    let verified = ring.verify(text, now).map_err(|refusal| {
        anyhow::anyhow!(
            "{what} is refused: {refusal}. The mirror may be tampered with, or not be a mirror \
             of {distribution}'s archive; choose another with {} (to trust a mirror's own key \
             as well, name its keyring in {})",
            distribution.mirror_env(),
            distribution.keyring_env()
        )
    })?;
    Ok(verified.text)
}

/// The text of a cleartext signed message without checking its signature (for the
/// explicit opt-out only), or the whole text if it is not one.
fn strip_signature(text: &str) -> String {
    let Some((_, body)) = text.split_once("\n\n") else {
        return text.to_string();
    };
    let body = body
        .split("-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap_or(body);
    body.lines()
        .map(|l| format!("{}\n", l.strip_prefix("- ").unwrap_or(l)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::apt::keys::DEBIAN_KEYS;
    use crate::openpgp::PinnedKey;

    use std::time::{Duration, UNIX_EPOCH};

    /// Real files from Debian's archive, as a mirror served them.
    const BULLSEYE: &str = include_str!("testdata/bullseye.InRelease");
    const BOOKWORM_SECURITY: &str = include_str!("testdata/bookworm-security.InRelease");
    /// The signature block of bookworm's InRelease: two RSA archive keys' signatures and
    /// the Ed25519 release key's.
    const BOOKWORM_SIGNATURES: &str = include_str!("testdata/bookworm.InRelease.signature");

    /// 2026-12-01: after both files were signed, before any shipped key expires.
    fn december_2026() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_083_200)
    }

    /// Verifies a Debian InRelease on 2026-12-01.
    fn debian(text: &str, what: &str) -> anyhow::Result<String> {
        verify_at(text, what, Distribution::Debian, december_2026())
    }

    #[test]
    fn the_shipped_keys_hold_their_pinned_signers() {
        let ring = Keyring::load(DEBIAN_KEYS).expect("every shipped key holds its signer");
        assert_eq!(ring.names().len(), DEBIAN_KEYS.len());
        // A pin that names a key the file does not hold is refused, not skipped.
        let wrong = [PinnedKey {
            signers: &["0000000000000000000000000000000000000000"],
            ..DEBIAN_KEYS[0]
        }];
        assert!(Keyring::load(&wrong).is_err());
    }

    #[test]
    fn real_inreleases_verify_and_yield_only_their_signed_text() {
        for (text, what) in [
            (BULLSEYE, "bullseye"),
            (BOOKWORM_SECURITY, "bookworm-security"),
        ] {
            let signed = debian(text, what).unwrap();
            assert!(
                signed.starts_with("Origin: Debian"),
                "{what}: {}",
                &signed[..40]
            );
            assert!(
                !signed.contains("PGP"),
                "{what}: the armour is not part of the text"
            );
        }
    }

    /// The attack that once worked: Debian's real, correctly signed InRelease with a second
    /// `SHA256:` section appended after the signature.
    #[test]
    fn a_section_appended_after_the_signature_is_refused() {
        let forged = format!(
            "{BULLSEYE}SHA256:\n {} 1000 main/binary-amd64/Packages.xz\n",
            "ab".repeat(32)
        );
        let err = debian(&forged, "bullseye's InRelease").unwrap_err();
        assert!(format!("{err}").contains("refused"), "{err}");
    }

    #[test]
    fn a_changed_byte_in_the_signed_text_is_refused() {
        let tampered = BULLSEYE.replacen("Suite: oldoldstable", "Suite: oldoldstablf", 1);
        assert_ne!(tampered, BULLSEYE);
        let err = debian(&tampered, "bullseye's InRelease").unwrap_err();
        assert!(format!("{err}").contains("none of its"), "{err}");
    }

    #[test]
    fn an_unsigned_index_is_refused() {
        let unsigned = strip_signature(BULLSEYE);
        assert!(unsigned.starts_with("Origin: Debian"));
        let err = debian(&unsigned, "an unsigned InRelease").unwrap_err();
        assert!(format!("{err}").contains("not a well-formed"), "{err}");
    }

    /// One suite's signatures over another suite's text: validly made, but not over this.
    #[test]
    fn a_signature_moved_from_another_file_is_refused() {
        let sig_start = |t: &str| t.find("-----BEGIN PGP SIGNATURE-----").unwrap();
        let moved = format!(
            "{}{}",
            &BULLSEYE[..sig_start(BULLSEYE)],
            &BOOKWORM_SECURITY[sig_start(BOOKWORM_SECURITY)..]
        );
        let err = debian(&moved, "bullseye's InRelease").unwrap_err();
        assert!(format!("{err}").contains("none of its"), "{err}");
    }

    /// Archives add signatures of kinds bpflab does not check (Ed25519): they are passed
    /// over, the RSA ones still count.
    #[test]
    fn signatures_of_other_kinds_are_passed_over() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let block = |armored: &str| -> Vec<u8> {
            let body: String = armored
                .lines()
                .skip_while(|l| !l.is_empty())
                .filter(|l| !l.is_empty() && !l.starts_with('=') && !l.starts_with("-----"))
                .collect();
            b64.decode(body).unwrap()
        };
        let sig_start = BULLSEYE.find("-----BEGIN PGP SIGNATURE-----").unwrap();
        let mut packets = block(&BULLSEYE[sig_start..]);
        packets.extend(block(BOOKWORM_SIGNATURES));
        let joined = format!(
            "{}-----BEGIN PGP SIGNATURE-----\n\n{}\n-----END PGP SIGNATURE-----\n",
            &BULLSEYE[..sig_start],
            b64.encode(&packets)
        );
        let signed = debian(&joined, "bullseye").unwrap();
        assert!(signed.starts_with("Origin: Debian"));
        // Alone, they verify nothing: 3 signatures, none checkable against this text.
        let others = format!("{}{BOOKWORM_SIGNATURES}", &BULLSEYE[..sig_start]);
        let err = debian(&others, "bullseye").unwrap_err();
        assert!(err.to_string().contains("none of its 3 signature"), "{err}");
    }

    #[test]
    fn a_signature_by_a_key_bpflab_does_not_trust_is_refused() {
        // bullseye's InRelease is signed by the 11 and 12 archive keys and the 11 release
        // key; a keyring of trixie's keys alone trusts none of them.
        let trixie: Vec<PinnedKey> = DEBIAN_KEYS
            .iter()
            .filter(|k| k.name.contains("trixie"))
            .copied()
            .collect();
        let ring = Keyring::load(&trixie).unwrap();
        let refusal = ring.verify(BULLSEYE, december_2026()).unwrap_err();
        assert!(
            refusal.to_string().contains("none of its 3 signature"),
            "{refusal}"
        );
    }

    #[test]
    fn signatures_from_expired_keys_are_refused() {
        let after_every_key = UNIX_EPOCH + Duration::from_secs(2_100_000_000);
        let ring = Keyring::load(DEBIAN_KEYS).unwrap();
        let refusal = ring.verify(BULLSEYE, after_every_key).unwrap_err();
        assert!(refusal.to_string().contains("expired"), "{refusal}");
    }
}
