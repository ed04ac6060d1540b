//! OpenPGP packets (RFC 4880 §4, §5): keys, signatures, and checking one with the other.

use rsa::traits::PublicKeyParts as _;
use rsa::{BoxedUint, Pkcs1v15Sign, PublicKey as RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

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
                [o1 @ 192..=223, o2, rest @ ..] => (
                    (usize::from(*o1) - 192) * 256 + usize::from(*o2) + 192,
                    rest,
                ),
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
pub(super) struct KeyPacket {
    pub(super) fingerprint: [u8; 20],
    pub(super) rsa: Option<RsaPublicKey>,
}

/// The v4 key and subkey packets of a keyring (other versions are skipped).
pub(super) fn key_packets(binary: &[u8]) -> anyhow::Result<Vec<KeyPacket>> {
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
    let len = usize::from(u16::from_be_bytes([*hi, *lo])).div_ceil(8);
    if rest.len() < len {
        return Err("a number is cut short".into());
    }
    *at = &rest[len..];
    Ok(&rest[..len])
}

/// A v4 signature packet over a text or binary document.
pub(super) struct Signature {
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
pub(super) fn signature_packets(binary: &[u8]) -> Result<(Vec<Signature>, usize), String> {
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
                (16, id) if id.len() == 8 => {
                    signature.issuer_ids.push(id.try_into().unwrap_or_default())
                }
                (33, [4, fpr @ ..]) if fpr.len() == 20 => signature
                    .issuer_fingerprints
                    .push(fpr.try_into().unwrap_or_default()),
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
            (192..=254, [second, rest @ ..]) => (
                (usize::from(first) - 192) * 256 + usize::from(*second) + 192,
                rest,
            ),
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
    pub(super) fn issued_by(&self, fingerprint: &[u8; 20]) -> bool {
        self.issuer_fingerprints.contains(fingerprint)
            || self.issuer_ids.iter().any(|id| fingerprint[12..] == id[..])
    }

    /// Whether `key` made this signature over `text` (§5.2.4: the text, then the
    /// packet's hashed part, then a trailer giving that part's length).
    pub(super) fn verifies(&self, text: &[u8], key: &RsaPublicKey) -> bool {
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
