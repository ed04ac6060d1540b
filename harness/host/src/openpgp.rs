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

use base64::Engine as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BoxedUint, Pkcs1v15Sign, PublicKey as RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

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
        anyhow::ensure!(self.keys.len() > before, "{origin} holds no RSA OpenPGP key");
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
            for key in self.keys.iter().filter(|k| signature.issued_by(&k.fingerprint)) {
                if !signature.verifies(&message.signed, &key.rsa) {
                    continue;
                }
                let names = if now >= key.expires { &mut expired } else { &mut signers };
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

/// A cleartext signed message, taken apart.
#[derive(Debug)]
struct Cleartext {
    /// The text as returned to callers (`\n` line ends).
    text: String,
    /// The text as hashed (`\r\n` between lines, none after the last).
    signed: Vec<u8>,
    /// The signature block, dearmored.
    signature: Vec<u8>,
}

const BEGIN_SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";

/// Splits a cleartext signed message (RFC 4880 §7): armor header line, `Hash:` headers,
/// a blank line, the dash-escaped text, the signature block. Nothing may precede it, and
/// only blank lines may follow it.
fn parse_cleartext(input: &str) -> Result<Cleartext, String> {
    let mut lines = input.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() != Some(BEGIN_SIGNED) {
        return Err(format!("it does not start with `{BEGIN_SIGNED}`"));
    }
    for header in lines.by_ref() {
        if header.is_empty() {
            break;
        }
        if !header.starts_with("Hash: ") {
            return Err(format!("unexpected armor header `{}`", visible(header)));
        }
    }
    let mut text_lines = Vec::new();
    loop {
        let line = lines.next().ok_or("the signature block is missing")?;
        if line == BEGIN_SIGNATURE {
            break;
        }
        let line = match line.strip_prefix("- ") {
            Some(unescaped) => unescaped,
            None if line.starts_with('-') => {
                return Err(format!("a line that is not dash-escaped: `{}`", visible(line)))
            }
            None => line,
        };
        // Trailing blanks are not signed (§7.1).
        text_lines.push(line.trim_end_matches([' ', '\t']));
    }
    let rest: Vec<&str> = lines.collect();
    let signature = dearmor_lines(&rest, "SIGNATURE")?;
    let text = text_lines.iter().map(|l| format!("{l}\n")).collect();
    let signed = text_lines.join("\r\n").into_bytes();
    Ok(Cleartext {
        text,
        signed,
        signature,
    })
}

/// Decodes an ASCII-armored block of `kind` (`PUBLIC KEY BLOCK`, `SIGNATURE`).
fn dearmor(text: &str, kind: &str) -> anyhow::Result<Vec<u8>> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| *l != format!("-----BEGIN PGP {kind}-----"))
        .skip(1)
        .collect();
    dearmor_lines(&lines, kind).map_err(|e| anyhow::anyhow!(e))
}

/// Decodes armor after its BEGIN line: headers, a blank line, base64, a CRC-24 line, the
/// END line, then nothing but blank lines.
fn dearmor_lines(lines: &[&str], kind: &str) -> Result<Vec<u8>, String> {
    let end = format!("-----END PGP {kind}-----");
    let mut lines = lines.iter().copied();
    for header in lines.by_ref() {
        if header.is_empty() {
            break;
        }
        if !header.contains(": ") {
            return Err(format!("bad armor header `{}`", visible(header)));
        }
    }
    let (mut base64, mut crc) = (String::new(), None);
    loop {
        let line = lines.next().ok_or_else(|| format!("`{end}` is missing"))?;
        if line == end {
            break;
        }
        match line.strip_prefix('=') {
            Some(sum) => crc = Some(sum.to_string()),
            None => base64.push_str(line.trim_end()),
        }
    }
    if let Some(extra) = lines.find(|l| !l.trim().is_empty()) {
        return Err(format!("data after the signature: `{}`", visible(extra)));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine
        .decode(base64.as_bytes())
        .map_err(|e| format!("bad base64 in the armor: {e}"))?;
    if let Some(crc) = crc {
        let expected = engine.decode(crc).map_err(|_| "bad armor checksum")?;
        if expected != crc24(&bytes).to_be_bytes()[1..] {
            return Err("the armor checksum does not match".into());
        }
    }
    Ok(bytes)
}

/// The armor checksum (RFC 4880 §6.1).
fn crc24(bytes: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for &b in bytes {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

/// Splits binary OpenPGP data into (tag, body) packets (RFC 4880 §4.2).
fn packets(mut data: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while let Some((&first, rest)) = data.split_first() {
        if first & 0x80 == 0 {
            return Err("not an OpenPGP packet".into());
        }
        let (tag, len, rest) = if first & 0x40 != 0 {
            let (len, rest) = match rest {
                [o1 @ 0..=191, rest @ ..] => (usize::from(*o1), rest),
                [o1 @ 192..=223, o2, rest @ ..] => {
                    ((usize::from(*o1) - 192) * 256 + usize::from(*o2) + 192, rest)
                }
                [255, a, b, c, d, rest @ ..] => {
                    (u32::from_be_bytes([*a, *b, *c, *d]) as usize, rest)
                }
                _ => return Err("partial or truncated packet lengths are not supported".into()),
            };
            (first & 0x3f, len, rest)
        } else {
            let (len, rest) = match (first & 3, rest) {
                (0, [a, rest @ ..]) => (usize::from(*a), rest),
                (1, [a, b, rest @ ..]) => (usize::from(u16::from_be_bytes([*a, *b])), rest),
                (2, [a, b, c, d, rest @ ..]) => {
                    (u32::from_be_bytes([*a, *b, *c, *d]) as usize, rest)
                }
                _ => return Err("indeterminate or truncated packet length".into()),
            };
            ((first >> 2) & 0x0f, len, rest)
        };
        if rest.len() < len {
            return Err("a packet is cut short".into());
        }
        out.push((tag, &rest[..len]));
        data = &rest[len..];
    }
    Ok(out)
}

/// A public key or subkey packet: its fingerprint, and the key if it is v4 RSA.
struct KeyPacket {
    fingerprint: [u8; 20],
    rsa: Option<RsaPublicKey>,
}

/// The v4 key and subkey packets of a keyring (other versions are skipped).
fn key_packets(binary: &[u8]) -> anyhow::Result<Vec<KeyPacket>> {
    let mut keys = Vec::new();
    for (tag, body) in packets(binary).map_err(|e| anyhow::anyhow!(e))? {
        if !matches!(tag, 6 | 14) || body.first() != Some(&4) {
            continue;
        }
        // The v4 fingerprint: SHA-1 of the packet as a primary key (§12.2).
        let mut sha1 = Sha1::new();
        sha1.update([0x99]);
        sha1.update((body.len() as u16).to_be_bytes());
        sha1.update(body);
        let fingerprint: [u8; 20] = sha1.finalize().into();
        // version(1) created(4) algorithm(1) then, for RSA (1, 3), the MPIs n and e.
        let rsa = match body.get(5) {
            Some(1 | 3) => {
                let mut at = &body[6..];
                let n = mpi(&mut at).map_err(|e| anyhow::anyhow!(e))?;
                let e = mpi(&mut at).map_err(|e| anyhow::anyhow!(e))?;
                RsaPublicKey::new(
                    BoxedUint::from_be_slice_vartime(n),
                    BoxedUint::from_be_slice_vartime(e),
                )
                .ok()
            }
            _ => None,
        };
        keys.push(KeyPacket { fingerprint, rsa });
    }
    Ok(keys)
}

/// Reads one multiprecision integer (§3.2), advancing `at`.
fn mpi<'a>(at: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let [hi, lo, rest @ ..] = *at else {
        return Err("a number is cut short".into());
    };
    let len = (usize::from(u16::from_be_bytes([*hi, *lo])) + 7) / 8;
    if rest.len() < len {
        return Err("a number is cut short".into());
    }
    *at = &rest[len..];
    Ok(&rest[..len])
}

/// A v4 signature packet over a text or binary document.
struct Signature {
    /// The packet's hashed part (version through hashed subpackets): hashed after the text.
    hashed: Vec<u8>,
    hash: HashAlgorithm,
    left16: [u8; 2],
    value: Vec<u8>,
    issuer_fingerprints: Vec<[u8; 20]>,
    issuer_ids: Vec<[u8; 8]>,
}

#[derive(Clone, Copy)]
enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

/// The signatures of a signature block that this code can check, and how many it holds
/// in all. Archives sign with several keys at once; one whose kind is not checked here
/// (Debian's Ed25519 release keys, say) is passed over, and can never count as verified.
fn signature_packets(binary: &[u8]) -> Result<(Vec<Signature>, usize), String> {
    let (mut out, mut count) = (Vec::new(), 0);
    for (tag, body) in packets(binary)? {
        if tag != 2 {
            return Err(format!("a packet of type {tag} in the signature block"));
        }
        count += 1;
        out.extend(parse_signature(body)?);
    }
    if count == 0 {
        return Err("the signature block holds no signature".into());
    }
    Ok((out, count))
}

/// A v4 RSA signature over a document with a SHA-2 hash; `None` for any other kind.
fn parse_signature(body: &[u8]) -> Result<Option<Signature>, String> {
    let [version, kind, algorithm, hash, hi, lo, ..] = *body else {
        return Err("a signature is cut short".into());
    };
    let hash = match hash {
        8 => HashAlgorithm::Sha256,
        9 => HashAlgorithm::Sha384,
        10 => HashAlgorithm::Sha512,
        // SHA-1, MD5 and unknown hashes are never accepted.
        _ => return Ok(None),
    };
    if version != 4 || !matches!(kind, 0x00 | 0x01) || !matches!(algorithm, 1 | 3) {
        return Ok(None);
    }
    let hashed_end = 6 + usize::from(u16::from_be_bytes([hi, lo]));
    let hashed_area = body.get(6..hashed_end).ok_or("a signature is cut short")?;
    let rest = &body[hashed_end..];
    let [uhi, ulo, rest @ ..] = rest else {
        return Err("a signature is cut short".into());
    };
    let unhashed_len = usize::from(u16::from_be_bytes([*uhi, *ulo]));
    let unhashed_area = rest.get(..unhashed_len).ok_or("a signature is cut short")?;
    let [l1, l2, value @ ..] = &rest[unhashed_len..] else {
        return Err("a signature is cut short".into());
    };
    let value = mpi(&mut &value[..])?.to_vec();
    let mut signature = Signature {
        hashed: body[..hashed_end].to_vec(),
        hash,
        left16: [*l1, *l2],
        value,
        issuer_fingerprints: Vec::new(),
        issuer_ids: Vec::new(),
    };
    // The issuer is only a hint for which key to try: the RSA check decides.
    for area in [hashed_area, unhashed_area] {
        for (kind, data) in subpackets(area)? {
            match (kind & 0x7f, data) {
                (16, id) if id.len() == 8 => signature.issuer_ids.push(id.try_into().unwrap_or_default()),
                (33, [4, fpr @ ..]) if fpr.len() == 20 => {
                    signature.issuer_fingerprints.push(fpr.try_into().unwrap_or_default())
                }
                _ => {}
            }
        }
    }
    Ok(Some(signature))
}

/// The (type, data) subpackets of a signature's subpacket area (§5.2.3.1).
fn subpackets(mut area: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while let Some((&first, rest)) = area.split_first() {
        let (len, rest) = match (first, rest) {
            (0..=191, rest) => (usize::from(first), rest),
            (192..=254, [second, rest @ ..]) => {
                ((usize::from(first) - 192) * 256 + usize::from(*second) + 192, rest)
            }
            (255, [a, b, c, d, rest @ ..]) => (u32::from_be_bytes([*a, *b, *c, *d]) as usize, rest),
            _ => return Err("a signature subpacket is cut short".into()),
        };
        let packet = rest.get(..len).filter(|p| !p.is_empty());
        let (&kind, data) = packet
            .and_then(|p| p.split_first())
            .ok_or("a signature subpacket is cut short")?;
        out.push((kind, data));
        area = &rest[len..];
    }
    Ok(out)
}

impl Signature {
    fn issued_by(&self, fingerprint: &[u8; 20]) -> bool {
        self.issuer_fingerprints.contains(fingerprint)
            || self.issuer_ids.iter().any(|id| fingerprint[12..] == id[..])
    }

    /// Whether `key` made this signature over `text` (§5.2.4: the text, then the
    /// packet's hashed part, then a trailer giving that part's length).
    fn verifies(&self, text: &[u8], key: &RsaPublicKey) -> bool {
        let mut trailer = vec![0x04, 0xff];
        trailer.extend_from_slice(&(self.hashed.len() as u32).to_be_bytes());
        let parts = [text, &self.hashed, &trailer];
        let (digest, scheme) = match self.hash {
            HashAlgorithm::Sha256 => (digest::<Sha256>(&parts), Pkcs1v15Sign::new::<Sha256>()),
            HashAlgorithm::Sha384 => (digest::<Sha384>(&parts), Pkcs1v15Sign::new::<Sha384>()),
            HashAlgorithm::Sha512 => (digest::<Sha512>(&parts), Pkcs1v15Sign::new::<Sha512>()),
        };
        if digest[..2] != self.left16 {
            return false;
        }
        // MPIs drop leading zero bytes; PKCS #1 wants the value at the key's full size.
        let size = key.size();
        if self.value.len() > size {
            return false;
        }
        let mut value = vec![0u8; size - self.value.len()];
        value.extend_from_slice(&self.value);
        key.verify(scheme, &digest, &value).is_ok()
    }
}

fn digest<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = D::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// A line from the network, with control characters shown rather than obeyed.
fn visible(line: &str) -> String {
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
            (format!("{signed}SHA256:\n forged\n"), "data after the signature"),
            (format!("Suite: y\n{signed}"), "does not start with"),
            ("Suite: stable\nSHA256:\n".to_string(), "does not start with"),
        ] {
            match ring.verify(&forged, SystemTime::now()) {
                Err(Refusal::Malformed(reason)) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{forged:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn dash_escaped_lines_are_unescaped_and_trailing_blanks_dropped() {
        let message = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n- -- a\nb  \n\
                       -----BEGIN PGP SIGNATURE-----\n\n\n-----END PGP SIGNATURE-----\n";
        let parsed = parse_cleartext(message).unwrap();
        assert_eq!(parsed.text, "-- a\nb\n");
        assert_eq!(parsed.signed, b"-- a\r\nb");
        let unescaped = message.replace("- -- a", "-- a");
        assert!(parse_cleartext(&unescaped).unwrap_err().contains("not dash-escaped"));
    }

    #[test]
    fn the_armor_checksum_is_crc24() {
        // RFC 4880's CRC-24 of "123456789" is 0x21CF02.
        assert_eq!(crc24(b"123456789"), 0x21CF02);
    }
}
