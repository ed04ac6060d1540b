//! Zstandard streams read as one: Ubuntu's kernel packages (`data.tar.zst`), their
//! modules (`.ko.zst`) and zstd-compressed bzImage payloads.
//!
//! ruzstd is pure Rust, so a first build compiles no C library for a decompressor a
//! run uses once per kernel. A zstd file may hold several frames one after the other
//! (what `zstd` writes for concatenated inputs, and what `pzstd` writes always); the
//! reader here goes on to the next frame where ruzstd's stops after the first, so no
//! file is ever cut short without an error. Checksums in the frames are verified.

use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Reads the decompressed bytes of every frame of `source`, in order.
pub fn reader<R: Read>(source: R) -> io::Result<Frames<R>> {
    let mut source = BufReader::new(source);
    let mut decoder = FrameDecoder::new();
    decoder.init(&mut source).map_err(io::Error::other)?;
    Ok(Frames { source, decoder })
}

/// Decompresses all of `stream`, refusing more than `limit` bytes.
pub fn decompress(stream: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader(stream)?
        .take(limit as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(io::Error::other(format!(
            "the zstd stream unpacks to more than {limit} bytes"
        )));
    }
    Ok(out)
}

/// The reader [`reader`] returns.
pub struct Frames<R: Read> {
    source: BufReader<R>,
    decoder: FrameDecoder,
}

impl<R: Read> Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.decoder.can_collect() > 0 {
                return self.decoder.read(buf);
            }
            if !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(io::Error::other)?;
                continue;
            }
            // The frame is read to its end: check it, then the stream ends here or
            // another frame follows.
            let (stored, computed) = (
                self.decoder.get_checksum_from_data(),
                self.decoder.get_calculated_checksum(),
            );
            if let (Some(stored), Some(computed)) = (stored, computed) {
                if stored != computed {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "a zstd frame's checksum does not match its contents \
                             ({computed:08x}, not {stored:08x}): the file is damaged"
                        ),
                    ));
                }
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.decoder
                .init(&mut self.source)
                .map_err(io::Error::other)?;
        }
    }
}

/// `bytes` compressed, for tests that need a zstd file.
#[cfg(test)]
pub(crate) fn compress(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};

    #[test]
    fn one_frame_unpacks() {
        let text = b"bpflab ".repeat(10_000);
        assert_eq!(decompress(&compress(&text), 1 << 20).unwrap(), text);
    }

    #[test]
    fn every_frame_of_a_concatenated_stream_is_read() {
        let mut stream = compress(b"first frame, ");
        stream.extend(compress(b"second frame"));
        assert_eq!(
            decompress(&stream, 1 << 20).unwrap(),
            b"first frame, second frame"
        );
    }

    #[test]
    fn more_than_the_limit_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let error = decompress(&compress(&zeros), 1000).unwrap_err();
        assert!(
            error.to_string().contains("more than 1000 bytes"),
            "{error}"
        );
    }

    #[test]
    fn a_changed_byte_fails_the_frame_checksum() {
        let text = b"bpflab ".repeat(100);
        // Uncompressed blocks, so the changed byte is content, not structure.
        let mut stream = compress_to_vec(text.as_slice(), CompressionLevel::Uncompressed);
        let at = stream.len() - 10;
        stream[at] ^= 1;
        let error = decompress(&stream, 1 << 20).unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
    }

    #[test]
    fn a_cut_or_damaged_stream_is_an_error() {
        let stream = compress(&b"bpflab ".repeat(10_000));
        assert!(decompress(&stream[..stream.len() / 2], 1 << 20).is_err());
        assert!(decompress(b"not zstd at all", 1 << 20).is_err());
    }
}
