//! Zstandard streams read as one: Ubuntu's kernel packages (`data.tar.zst`), their
//! modules (`.ko.zst`) and zstd-compressed bzImage payloads.
//!
//! ruzstd is pure Rust, so a first build compiles no C library for a decompressor a
//! run uses once per kernel. A zstd file may hold several frames one after the other
//! (what `zstd` writes for concatenated inputs, and what `pzstd` writes always); the
//! reader here goes on to the next frame where ruzstd's stops after the first, so no
//! file is ever cut short without an error; skippable frames (metadata, such as
//! `pzstd`'s) are passed over, as libzstd passes them. Checksums in the frames are
//! verified. A frame may ask for a window of at most ruzstd's default, 128 MiB.
//! Callers bound what they read from the stream.

use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Reads the decompressed bytes of every frame of `source`, in order.
pub fn reader<R: Read>(source: R) -> io::Result<Frames<R>> {
    let mut frames = Frames {
        source: BufReader::new(source),
        decoder: FrameDecoder::new(),
    };
    if !frames.next_frame()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an empty zstd stream: no frame in it",
        ));
    }
    Ok(frames)
}

/// The reader [`reader`] returns.
pub struct Frames<R: Read> {
    source: BufReader<R>,
    decoder: FrameDecoder,
}

impl<R: Read> Frames<R> {
    /// Starts the next data frame, passing over skippable ones; false at the stream's end.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.init(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.source).take(length.into()), &mut io::sink())?;
                    if skipped < u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "a skippable zstd frame cut short",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }
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
            if !self.next_frame()? {
                return Ok(0);
            }
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

    /// All of `stream`, refusing more than `limit` bytes (as every caller bounds it).
    fn decompress(stream: &[u8], limit: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader(stream)?
            .take(limit as u64 + 1)
            .read_to_end(&mut out)?;
        if out.len() > limit {
            return Err(io::Error::other(format!("more than {limit} bytes")));
        }
        Ok(out)
    }

    #[test]
    fn skippable_frames_are_passed_over() {
        let mut stream = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, b'm', b'e', b't'];
        stream.extend(compress(b"data"));
        stream.extend([0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
        assert_eq!(decompress(&stream, 100).unwrap(), b"data");
        // One that claims more bytes than follow is an error, not an end.
        let cut = [0x50, 0x2a, 0x4d, 0x18, 200, 0, 0, 0, b'x'];
        assert!(decompress(&cut, 100).is_err());
    }

    #[test]
    fn a_frame_asking_for_a_huge_window_is_refused_before_allocating() {
        // Magic, a descriptor with no content size, then a window descriptor of
        // exponent 31: a 2^41-byte (2 TiB) window.
        let stream = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0, 0, 0, 0];
        let error = reader(stream.as_slice()).err().expect("refused");
        assert!(
            error.to_string().to_lowercase().contains("window"),
            "{error}"
        );
    }

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
