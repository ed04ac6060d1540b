//! The archive keys bpflab ships (`images/keys/<distribution>/`) and trusts, each pinned
//! here by the fingerprint of the key packet that signs and by its expiry: a key file
//! that holds other keys besides, or a pinned key it lacks, changes nothing or is refused
//! (see [`crate::openpgp::Keyring::load`]).

use crate::openpgp::PinnedKey;

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

/// Ubuntu's archive signing keys, from the `ubuntu-keyring` package in Ubuntu's own
/// archive (its `ubuntu-archive-keyring.gpg`; Debian packages no Ubuntu keyring). Both are
/// RSA keys that sign with their primary key and carry no expiry. The 2012 key signs
/// xenial and bionic (and focal, with the 2018 key), the 2018 key focal to noble. xenial's
/// suites are signed with Ubuntu's 2004 DSA key as well, which bpflab does not check (it
/// is in Ubuntu's ring of removed keys): the 2012 key's signature is the one that counts.
pub const UBUNTU_KEYS: &[PinnedKey] = &[
    PinnedKey {
        name: "Ubuntu Archive Automatic Signing Key (2012)",
        signers: &["790BC7277767219C42C86F933B4FE6ACC0B21F32"],
        expires: u64::MAX,
        armored: include_str!("../../../../../images/keys/ubuntu/ubuntu-2012-archive.asc"),
    },
    PinnedKey {
        name: "Ubuntu Archive Automatic Signing Key (2018)",
        signers: &["F6ECB3762474EDA9D21B7022871920D1991BC93C"],
        expires: u64::MAX,
        armored: include_str!("../../../../../images/keys/ubuntu/ubuntu-2018-archive.asc"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openpgp::Keyring;
    use std::time::{Duration, UNIX_EPOCH};

    /// Real InRelease files of Ubuntu's archive, as its mirror served them.
    const XENIAL_UPDATES: &str = include_str!("testdata/xenial-updates.InRelease");
    const JAMMY_UPDATES: &str = include_str!("testdata/jammy-updates.InRelease");

    fn december_2026() -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_083_200)
    }

    fn only(name: &str) -> Keyring {
        let keys: Vec<PinnedKey> = UBUNTU_KEYS
            .iter()
            .filter(|k| k.name.contains(name))
            .copied()
            .collect();
        Keyring::load(&keys).unwrap()
    }

    #[test]
    fn every_shipped_key_holds_its_pinned_signer() {
        for keys in [DEBIAN_KEYS, UBUNTU_KEYS] {
            let ring = Keyring::load(keys).expect("every shipped key holds its signer");
            assert_eq!(ring.names().len(), keys.len());
        }
    }

    /// xenial is signed by the 2004 DSA key and the 2012 RSA key: the DSA signature is
    /// passed over and the 2012 key's verifies. jammy is signed by the 2018 key alone.
    #[test]
    fn each_ubuntu_suite_is_signed_by_a_shipped_rsa_key() {
        let ring = Keyring::load(UBUNTU_KEYS).unwrap();
        for (text, signer) in [(XENIAL_UPDATES, "(2012)"), (JAMMY_UPDATES, "(2018)")] {
            let verified = ring.verify(text, december_2026()).unwrap();
            assert!(verified.text.starts_with("Origin: Ubuntu"));
            assert_eq!(verified.signers.len(), 1, "{:?}", verified.signers);
            assert!(
                verified.signers[0].ends_with(signer),
                "{:?}",
                verified.signers
            );
        }
        // Each key alone: the other suite is refused, its signature counted but untrusted.
        let refusal = only("(2018)")
            .verify(XENIAL_UPDATES, december_2026())
            .unwrap_err();
        assert!(
            refusal.to_string().contains("none of its 2 signature"),
            "{refusal}"
        );
        assert!(only("(2012)")
            .verify(JAMMY_UPDATES, december_2026())
            .is_err());
    }

    #[test]
    fn debian_keys_do_not_vouch_for_ubuntu() {
        let ring = Keyring::load(DEBIAN_KEYS).unwrap();
        assert!(ring.verify(JAMMY_UPDATES, december_2026()).is_err());
    }
}
