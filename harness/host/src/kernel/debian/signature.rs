//! The archive's signature on `InRelease`: the root of the chain of hashes that ends at
//! each `.deb`. Verified in Rust against Debian's archive keys, which bpflab ships in
//! `images/keys/debian/` and pins here by fingerprint and expiry. Nothing on the host
//! (no `gpgv`, no keyring) is needed, and nothing missing on the host weakens the check:
//! a suite whose signature does not verify is not read at all.

use std::time::SystemTime;

use anyhow::Context as _;

use crate::openpgp::{Keyring, PinnedKey};

/// Environment variable naming an extra armored (or binary) OpenPGP keyring to trust as
/// well, for a private mirror that re-signs Debian's archive with a key of its own.
pub const KEYRING_ENV: &str = "BPFLAB_DEBIAN_KEYRING";
/// Environment variable that turns signature checks off (loudly, every time).
pub const INSECURE_ENV: &str = "BPFLAB_INSECURE_SKIP_SIGNATURES";

/// Debian's archive signing keys for the suites bpflab reads (bullseye to trixie, and
/// sid/experimental, which the newest of them sign), with their expiry as their
/// self-signatures give it (`gpg --show-keys`). The automatic keys sign with a subkey,
/// pinned here; the bullseye release key signs with its primary key. (Debian's bookworm
/// and trixie release keys are Ed25519, which bpflab does not check; every suite they
/// sign is signed by an automatic key as well.)
pub const DEBIAN_KEYS: &[PinnedKey] = &[
    PinnedKey {
        name: "Debian Archive Automatic Signing Key (11/bullseye)",
        signers: &["A7236886F3CCCAAD148A27F80E98404D386FA1D9"],
        expires: 1_863_170_316, // 2029-01-15
        armored: include_str!("../../../../../images/keys/debian/bullseye-automatic.asc"),
    },
    PinnedKey {
        name: "Debian Security Archive Automatic Signing Key (11/bullseye)",
        signers: &["ED541312A33F1128F10B1C6C54404762BBB6E853"],
        expires: 1_863_170_224, // 2029-01-15
        armored: include_str!("../../../../../images/keys/debian/bullseye-security-automatic.asc"),
    },
    PinnedKey {
        name: "Debian Stable Release Key (11/bullseye)",
        signers: &["A4285295FC7B1A81600062A9605C66F00D6C9793"],
        expires: 1_865_526_862, // 2029-02-11
        armored: include_str!("../../../../../images/keys/debian/bullseye-stable.asc"),
    },
    PinnedKey {
        name: "Debian Archive Automatic Signing Key (12/bookworm)",
        signers: &["4CB50190207B4758A3F73A796ED0E7B82643E131"],
        expires: 1_926_589_461, // 2031-01-19
        armored: include_str!("../../../../../images/keys/debian/bookworm-automatic.asc"),
    },
    PinnedKey {
        name: "Debian Security Archive Automatic Signing Key (12/bookworm)",
        signers: &["B0CAB9266E8C3929798B3EEEBDE6D2B9216EC7A8"],
        expires: 1_926_589_533, // 2031-01-19
        armored: include_str!("../../../../../images/keys/debian/bookworm-security-automatic.asc"),
    },
    PinnedKey {
        name: "Debian Archive Automatic Signing Key (13/trixie)",
        signers: &["B8E5F13176D2A7A75220028078DBA3BC47EF2265"],
        expires: 2_058_699_029, // 2035-03-28
        armored: include_str!("../../../../../images/keys/debian/trixie-automatic.asc"),
    },
    PinnedKey {
        name: "Debian Security Archive Automatic Signing Key (13/trixie)",
        signers: &["89C87ACEA5DD6B8E6A7068808E9F831205B4BA95"],
        expires: 2_058_699_101, // 2035-03-28
        armored: include_str!("../../../../../images/keys/debian/trixie-security-automatic.asc"),
    },
];

/// The keys InRelease files are checked against: Debian's, plus the user's extra keyring.
pub fn keyring() -> anyhow::Result<Keyring> {
    let mut ring = Keyring::load(DEBIAN_KEYS)?;
    if let Some(path) = std::env::var_os(KEYRING_ENV) {
        let path = std::path::PathBuf::from(path);
        // Named but unreadable is an error: a typo must not quietly mean "Debian's only".
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading the keyring {} named by {KEYRING_ENV} (unset it to trust Debian's \
                 keys alone)",
                path.display()
            )
        })?;
        ring.add_keys(&bytes, &format!("{KEYRING_ENV}={}", path.display()))?;
    }
    Ok(ring)
}

/// Whether the user turned signature checks off.
pub fn insecure() -> bool {
    std::env::var_os(INSECURE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Checks the signature of an `InRelease` file (`what` names it in errors) and returns
/// the signed text: the only part of the file anything may be read from.
pub fn verify_inrelease(text: &str, what: &str) -> anyhow::Result<String> {
    verify_at(text, what, SystemTime::now())
}

/// [`verify_inrelease`] at a given time (tests pin it: real signed files do not change,
/// the clock does).
pub fn verify_at(text: &str, what: &str, now: SystemTime) -> anyhow::Result<String> {
    if insecure() {
        crate::term::status(format!(
            "WARNING: the signature of {what} is NOT checked ({INSECURE_ENV} is set): whoever controls \
             the network between you and the mirror chooses the kernels bpflab boots and builds"
        ));
        // Still only the text inside the signed block, when there is one.
        return Ok(strip_signature(text));
    }
    let ring = keyring()?;
    let verified = ring.verify(text, now).map_err(|refusal| {
        anyhow::anyhow!(
            "{what} is refused: {refusal}. The mirror may be tampered with, or not a Debian \
             mirror; choose another with {} (to trust a mirror's own key as well, name its \
             keyring in {KEYRING_ENV})",
            crate::kernel::debian::mirror::MIRROR_ENV
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
            let signed = verify_at(text, what, december_2026()).unwrap();
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
        let err = verify_at(&forged, "bullseye's InRelease", december_2026()).unwrap_err();
        assert!(format!("{err}").contains("refused"), "{err}");
    }

    #[test]
    fn a_changed_byte_in_the_signed_text_is_refused() {
        let tampered = BULLSEYE.replacen("Suite: oldoldstable", "Suite: oldoldstablf", 1);
        assert_ne!(tampered, BULLSEYE);
        let err = verify_at(&tampered, "bullseye's InRelease", december_2026()).unwrap_err();
        assert!(format!("{err}").contains("none of its"), "{err}");
    }

    #[test]
    fn an_unsigned_index_is_refused() {
        let unsigned = strip_signature(BULLSEYE);
        assert!(unsigned.starts_with("Origin: Debian"));
        let err = verify_at(&unsigned, "an unsigned InRelease", december_2026()).unwrap_err();
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
        let err = verify_at(&moved, "bullseye's InRelease", december_2026()).unwrap_err();
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
        let signed = verify_at(&joined, "bullseye", december_2026()).unwrap();
        assert!(signed.starts_with("Origin: Debian"));
        // Alone, they verify nothing: 3 signatures, none checkable against this text.
        let others = format!("{}{BOOKWORM_SIGNATURES}", &BULLSEYE[..sig_start]);
        let err = verify_at(&others, "bullseye", december_2026()).unwrap_err();
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
