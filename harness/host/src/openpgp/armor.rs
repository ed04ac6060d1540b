//! ASCII armor and the cleartext signature framework (RFC 4880 §6, §7).

use base64::Engine as _;

use super::visible;

/// A cleartext signed message, taken apart.
#[derive(Debug)]
pub(super) struct Cleartext {
    /// The text as returned to callers (`\n` line ends).
    pub(super) text: String,
    /// The text as hashed (`\r\n` between lines, none after the last).
    pub(super) signed: Vec<u8>,
    /// The signature block, dearmored.
    pub(super) signature: Vec<u8>,
}

const BEGIN_SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";

/// Splits a cleartext signed message (RFC 4880 §7): armor header line, `Hash:` headers,
/// a blank line, the dash-escaped text, the signature block. Nothing may precede it, and
/// only blank lines may follow it.
pub(super) fn parse_cleartext(input: &str) -> Result<Cleartext, String> {
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
                return Err(format!(
                    "a line that is not dash-escaped: `{}`",
                    visible(line)
                ))
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
pub(super) fn dearmor(text: &str, kind: &str) -> anyhow::Result<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_escaped_lines_are_unescaped_and_trailing_blanks_dropped() {
        let message = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n- -- a\nb  \n\
                       -----BEGIN PGP SIGNATURE-----\n\n\n-----END PGP SIGNATURE-----\n";
        let parsed = parse_cleartext(message).unwrap();
        assert_eq!(parsed.text, "-- a\nb\n");
        assert_eq!(parsed.signed, b"-- a\r\nb");
        let unescaped = message.replace("- -- a", "-- a");
        assert!(parse_cleartext(&unescaped)
            .unwrap_err()
            .contains("not dash-escaped"));
    }

    #[test]
    fn the_armor_checksum_is_crc24() {
        // RFC 4880's CRC-24 of "123456789" is 0x21CF02.
        assert_eq!(crc24(b"123456789"), 0x21CF02);
    }
}
