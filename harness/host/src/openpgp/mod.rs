//! OpenPGP cleartext signatures (an archive's `InRelease`, kernel.org's `sha256sums.asc`),
//! verified in Rust against keys that bpflab ships and pins by fingerprint: no `gpgv`, no
//! host keyring, and nothing missing on the host can weaken the check.
//!
//! Only what these archives use is implemented: version 4 RSA keys and signatures over
//! SHA-256/384/512 (RFC 4880 §5.2, §5.5, §7), with the RSA arithmetic from the `rsa`
//! crate. A complete OpenPGP implementation (the `pgp` crate) would add over a hundred
//! crates and a minute of compiling to every new clone, for algorithms no archive uses.
//! Anything else — another key or signature version or algorithm, SHA-1, partial
//! lengths, data around the signed block — is refused, never guessed at.
//!
//! A caller gets back the signed text alone: whatever an attacker adds around the signed
//! block is refused, and could never be read anyway.

use std::time::{SystemTime, UNIX_EPOCH};

use rsa::PublicKey as RsaPublicKey;

mod armor;
mod packet;

use armor::{dearmor, parse_cleartext};
use packet::{key_packets, signature_packets};

/// A key bpflab trusts, as shipped in `images/keys/`.
#[derive(Debug, Clone, Copy)]
pub struct PinnedKey {
    /// Who the key belongs to, for messages.
    pub name: &'static str,
    /// Fingerprints (uppercase hex) of the key packets in `armored` that may sign: the
    /// primary key, or the signing subkeys an archive really uses. Other packets in the
    /// file are ignored, so a subkey is trusted because it is pinned here, not because
    /// the file says it belongs.
    pub signers: &'static [&'static str],
    /// When the key expires (seconds since 1970, as its self-signature says); signatures
    /// are not accepted after that.
    pub expires: u64,
    /// The armored public key, as published.
    pub armored: &'static str,
}

/// RSA keys to verify against.
pub struct Keyring {
    keys: Vec<TrustedKey>,
}

struct TrustedKey {
    name: String,
    fingerprint: [u8; 20],
    expires: u64,
    rsa: RsaPublicKey,
}

/// A message whose signature verified, and the text it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed text, lines ending in `\n` (trailing blanks dropped, as signed).
    pub text: String,
    /// Names of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Not an OpenPGP cleartext signed message, or one with data around it.
    #[error("it is not a well-formed OpenPGP signed message ({0}); nothing in it was used")]
    Malformed(String),
    /// Signed, but by none of the trusted keys (or not validly).
    #[error(
        "none of its {count} signature(s) verifies against bpflab's pinned keys ({keys}); \
         nothing in it was used"
    )]
    NoTrustedSignature {
        /// Signatures found.
        count: usize,
        /// The trusted keys' names.
        keys: String,
    },
    /// Validly signed, but only by keys that have expired.
    #[error("it is signed only by keys that have expired ({0}): bpflab needs an update")]
    Expired(String),
}

impl Keyring {
    /// Loads pinned keys. A pinned fingerprint missing from its file, or a file that does
    /// not parse, is a fault in bpflab's shipped keys: an error, never a smaller keyring.
    pub fn load(pins: &[PinnedKey]) -> anyhow::Result<Keyring> {
        let mut keys = Vec::new();
        for pin in pins {
            let packets = key_packets(&dearmor(pin.armored, "PUBLIC KEY BLOCK")?)?;
            for signer in pin.signers {
                let found = packets
                    .iter()
                    .find(|k| hex::encode_upper(k.fingerprint) == *signer)
                    .ok_or_else(|| {
                        anyhow::anyhow!("the shipped key {} has no key {signer}", pin.name)
                    })?;
                let rsa = found.rsa.clone().ok_or_else(|| {
                    anyhow::anyhow!("the shipped key {} {signer} is not an RSA key", pin.name)
                })?;
                keys.push(TrustedKey {
                    name: pin.name.to_string(),
                    fingerprint: found.fingerprint,
                    expires: pin.expires,
                    rsa,
                });
            }
        }
        Ok(Keyring { keys })
    }

    /// Adds every RSA key and subkey of a user's keyring file, armored or binary (trusted
    /// because the user names it; `origin` says where it came from in messages).
    pub fn add_keys(&mut self, bytes: &[u8], origin: &str) -> anyhow::Result<()> {
        let binary = if bytes.starts_with(b"-----") {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{origin}: an armored keyring must be text"))?;
            dearmor(text, "PUBLIC KEY BLOCK").map_err(|e| anyhow::anyhow!("{origin}: {e}"))?
        } else {
            bytes.to_vec()
        };
        let before = self.keys.len();
        for key in key_packets(&binary).map_err(|e| anyhow::anyhow!("{origin}: {e}"))? {
            if let Some(rsa) = key.rsa {
                self.keys.push(TrustedKey {
                    name: format!("{origin}: {}", hex::encode_upper(key.fingerprint)),
                    fingerprint: key.fingerprint,
                    expires: u64::MAX,
                    rsa,
                });
            }
        }
        anyhow::ensure!(
            self.keys.len() > before,
            "{origin} holds no RSA OpenPGP key"
        );
        Ok(())
    }

    /// The trusted keys' names, each once.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.keys.iter().map(|k| k.name.clone()).collect();
        names.dedup();
        names
    }

    /// Verifies a cleartext signed message: at least one signature must be made by a
    /// trusted, unexpired key. Signatures by other keys are ignored (archives sign with
    /// several keys at once, old and new).
    pub fn verify(&self, armored: &str, now: SystemTime) -> Result<Verified, Refusal> {
        let message = parse_cleartext(armored).map_err(Refusal::Malformed)?;
        let (signatures, count) =
            signature_packets(&message.signature).map_err(Refusal::Malformed)?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (mut signers, mut expired) = (Vec::new(), Vec::new());
        for signature in &signatures {
            for key in self
                .keys
                .iter()
                .filter(|k| signature.issued_by(&k.fingerprint))
            {
                if !signature.verifies(&message.signed, &key.rsa) {
                    continue;
                }
                let names = if now >= key.expires {
                    &mut expired
                } else {
                    &mut signers
                };
                if !names.contains(&key.name) {
                    names.push(key.name.clone());
                }
            }
        }
        if signers.is_empty() {
            if !expired.is_empty() {
                return Err(Refusal::Expired(expired.join(", ")));
            }
            return Err(Refusal::NoTrustedSignature {
                count,
                keys: self.names().join("; "),
            });
        }
        Ok(Verified {
            text: message.text,
            signers,
        })
    }
}

/// A line from the network, with control characters shown rather than obeyed.
pub(crate) fn visible(line: &str) -> String {
    let shown: String = line.chars().take(80).collect();
    shown.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_around_a_signed_block_is_refused() {
        let ring = Keyring { keys: Vec::new() };
        let signed = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\n\
                      -----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n";
        for (forged, why) in [
            (
                format!("{signed}SHA256:\n forged\n"),
                "data after the signature",
            ),
            (format!("Suite: y\n{signed}"), "does not start with"),
            (
                "Suite: stable\nSHA256:\n".to_string(),
                "does not start with",
            ),
        ] {
            match ring.verify(&forged, SystemTime::now()) {
                Err(Refusal::Malformed(reason)) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{forged:?} gave {other:?}"),
            }
        }
    }
}
