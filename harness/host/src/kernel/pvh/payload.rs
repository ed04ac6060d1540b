//! The compressed kernel inside a bzImage, and unpacking it: the boot protocol's header
//! says where it lies, and its first bytes which of Kbuild's compressors packed it.

use std::io::Read as _;

use anyhow::{bail, ensure, Context as _};

/// No kernel this side of absurd unpacks to more (Debian's 6.1 is about 60 MiB).
pub const MAX_VMLINUX: usize = 512 << 20;

/// The compressed kernel inside a bzImage: `payload_offset` and `payload_length` of the
/// boot protocol (2.08+), from the start of the protected-mode code, which follows the
/// `setup_sects` 512-byte sectors of setup code and the boot sector. `None` for a kernel
/// older than protocol 2.08 (2.6.26), whose header does not say; an error when the header
/// points outside the file (cut short, or damaged).
pub fn payload(image: &[u8]) -> anyhow::Result<Option<&[u8]>> {
    ensure!(image.get(0x202..0x206) == Some(b"HdrS"), "not a bzImage");
    let u16_at = |at: usize| -> anyhow::Result<usize> {
        let bytes = image.get(at..at + 2).context("its header is cut short")?;
        Ok(u16::from_le_bytes(bytes.try_into()?) as usize)
    };
    let u32_at = |at: usize| -> anyhow::Result<usize> {
        let bytes = image.get(at..at + 4).context("its header is cut short")?;
        Ok(u32::from_le_bytes(bytes.try_into()?) as usize)
    };
    if u16_at(0x206)? < 0x0208 {
        return Ok(None);
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    let end = start + u32_at(0x24c)?;
    match image.get(start..end) {
        Some(payload) => Ok(Some(payload)),
        None => bail!(
            "its header puts the compressed kernel at bytes {start}..{end}, but the file has {} \
             (cut short?)",
            image.len()
        ),
    }
}

/// Unpacks a kernel payload by its magic. Kbuild appends the unpacked size, 4 bytes
/// little-endian, after every compressor's stream. `None` for a compressor bpflab does
/// not unpack (LZMA, LZO); an error when one it knows fails: the image is damaged.
pub fn decompress(payload: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    ensure!(payload.len() > 8, "its compressed kernel is empty");
    let (stream, size) = payload.split_at(payload.len() - 4);
    let size = u32::from_le_bytes(size.try_into()?) as usize;
    let (name, unpacked) = match stream {
        [0x02, 0x21, 0x4c, 0x18, ..] => ("LZ4", lz4_legacy(&stream[4..], size)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => (
            "zstd",
            crate::zstd::reader(stream)
                .map_err(anyhow::Error::from)
                .and_then(|r| bounded(r, size)),
        ),
        [0x1f, 0x8b, ..] => ("gzip", bounded(flate2::read::GzDecoder::new(stream), size)),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            ("xz", bounded(xz2::read::XzDecoder::new(stream), size))
        }
        [b'B', b'Z', b'h', ..] => ("bzip2", bounded(bzip2::read::BzDecoder::new(stream), size)),
        _ => return Ok(None),
    };
    let out = unpacked.with_context(|| format!("its {name}-compressed kernel does not unpack"))?;
    ensure!(
        out.len() == size,
        "its {name}-compressed kernel unpacks to {} bytes, not the {size} it claims",
        out.len()
    );
    Ok(Some(out))
}

/// Reads all of `reader`, refusing a claimed size or an output above [`MAX_VMLINUX`].
fn bounded(reader: impl std::io::Read, size: usize) -> anyhow::Result<Vec<u8>> {
    ensure!(size <= MAX_VMLINUX, "it claims {size} bytes unpacked");
    let mut out = Vec::with_capacity(size);
    reader.take(MAX_VMLINUX as u64 + 1).read_to_end(&mut out)?;
    ensure!(out.len() <= MAX_VMLINUX, "it unpacks to too much");
    Ok(out)
}

/// `lz4 -l`'s legacy frame, as Kbuild writes it: after the magic, blocks of at most 8 MiB
/// unpacked, each a 4-byte little-endian length and an LZ4 block.
fn lz4_legacy(mut stream: &[u8], size: usize) -> anyhow::Result<Vec<u8>> {
    const BLOCK: usize = 8 << 20;
    ensure!(size <= MAX_VMLINUX, "it claims {size} bytes unpacked");
    let mut out = vec![0u8; size];
    let mut filled = 0;
    while stream.len() >= 4 && filled < size {
        let (len, rest) = stream.split_at(4);
        let len = u32::from_le_bytes(len.try_into()?) as usize;
        let block = rest.get(..len).context("an LZ4 block is cut short")?;
        let room = (size - filled).min(BLOCK);
        filled += lz4_flex::block::decompress_into(block, &mut out[filled..filled + room])
            .map_err(|e| anyhow::anyhow!("an LZ4 block does not unpack: {e}"))?;
        stream = &rest[len..];
    }
    out.truncate(filled);
    Ok(out)
}
