//! How large untrusted bytes may grow: every download, decompression and unpacking of
//! bytes from the network is bounded, so that a broken or hostile server cannot fill the
//! disk or the memory. Each cap is several times the largest real case, measured on
//! Debian bookworm and on kernel.org's 6.x tarballs; a real file larger than its cap would
//! be a bpflab bug, and the error says so.

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;

/// A download the index gives no size for: kernel.org source tarballs (a 6.x
/// `linux-*.tar.xz` is about 140–150 MB).
pub const MAX_UNSIZED_DOWNLOAD: u64 = 1 << 30;

/// A text file fetched into memory: an `InRelease` (bookworm's is 151 KB) or kernel.org's
/// `sha256sums.asc` (about 1 MB).
pub const MAX_TEXT: u64 = 64 << 20;

/// A `Packages` index, decompressed: bookworm's main/binary-amd64, 63,440 packages, is
/// 50 MB.
pub const MAX_PACKAGES_INDEX: u64 = 512 << 20;

/// The whole `data.tar` of a `.deb`, decompressed: the largest package bpflab opens, a
/// full kernel image with its modules (bookworm's `linux-image-6.1.0-*-amd64`), installs
/// 400 MB.
pub const MAX_PACKAGE_DATA: u64 = 2 << 30;

/// One file taken out of a `.deb`: the largest is the source tarball in
/// `linux-source-6.1` (136 MB); kernel images are 8–40 MB.
pub const MAX_PACKAGE_FILE: u64 = 512 << 20;

/// A kernel source tarball, decompressed: a 6.x tree is about 1.5 GB.
pub const MAX_SOURCE_TREE_BYTES: u64 = 6 << 30;

/// Entries (files, directories, links) of a kernel source tarball: a 6.x tree has
/// about 90,000.
pub const MAX_SOURCE_TREE_ENTRIES: u64 = 400_000;

/// Reading past a cap: carried inside an `io::Error` through decompressors and the tar
/// reader, and found again by [`exceeded`].
#[derive(Debug, thiserror::Error)]
#[error("{what} is larger than {}, bpflab's cap for it", human(*cap))]
pub struct TooLarge {
    /// What was being read, for messages.
    pub what: String,
    /// The cap, in bytes.
    pub cap: u64,
}

/// A reader that fails with [`TooLarge`] as soon as its inner reader yields more than
/// `cap` bytes (unlike `Read::take`, which would end quietly and make the excess look
/// like a complete, shorter stream).
pub struct AtMost<R> {
    inner: R,
    left: u64,
    cap: u64,
    what: String,
}

impl<R: Read> AtMost<R> {
    /// Wraps `inner`, allowing `cap` bytes of `what`.
    pub fn new(inner: R, cap: u64, what: impl Into<String>) -> Self {
        AtMost {
            inner,
            left: cap,
            cap,
            what: what.into(),
        }
    }
}

impl<R: Read> Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte more than allowed is enough to tell "exactly the cap" from "more".
        let want = buf
            .len()
            .min(usize::try_from(self.left + 1).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(TooLarge {
                what: self.what.clone(),
                cap: self.cap,
            }));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The cap that `error` ran into, however deeply a decompressor or the tar reader
/// wrapped it.
pub fn exceeded(error: &anyhow::Error) -> Option<&TooLarge> {
    error.chain().find_map(|cause| {
        cause.downcast_ref::<TooLarge>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()?
                .get_ref()?
                .downcast_ref::<TooLarge>()
        })
    })
}

/// What to do about a cap that a real file ran into.
pub const TOO_LARGE_HINT: &str = "nothing was kept. A real file this large would be a \
    bpflab bug (please report it); otherwise the server sent something other than what was \
    asked for";

/// Decompresses an `.xz` text file (a `Packages` index) into memory, refusing more than
/// `cap` bytes of text.
pub fn xz_text(path: &Path, cap: u64) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let what = format!("{}, decompressed,", path.display());
    let mut text = String::new();
    AtMost::new(xz2::read::XzDecoder::new(file), cap, what)
        .read_to_string(&mut text)
        .map_err(anyhow::Error::from)
        .map_err(|e| match exceeded(&e) {
            Some(too_large) => anyhow::anyhow!("{too_large}: {TOO_LARGE_HINT}"),
            None => e.context(format!("decompressing {}", path.display())),
        })?;
    Ok(text)
}

/// A byte count for messages: `512 MiB`, `1 GiB`, `1000 bytes`.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_may_give_exactly_its_cap_and_not_one_byte_more() {
        let mut exact = Vec::new();
        AtMost::new(&[7u8; 100][..], 100, "x")
            .read_to_end(&mut exact)
            .unwrap();
        assert_eq!(exact.len(), 100);
        let err = AtMost::new(&[7u8; 101][..], 100, "the thing")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the thing is larger than 100 bytes, bpflab's cap for it"
        );
    }

    #[test]
    fn an_index_that_decompresses_past_its_cap_is_refused() {
        // 16 MiB of newlines compress to a few KiB: the shape of a decompression bomb.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Packages.xz");
        let mut xz = xz2::write::XzEncoder::new(std::fs::File::create(&path).unwrap(), 0);
        std::io::copy(&mut std::io::repeat(b'\n').take(16 << 20), &mut xz).unwrap();
        xz.finish().unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 64 << 10);
        let err = xz_text(&path, 1 << 20).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("decompressed, is larger than 1 MiB") && msg.contains("nothing was kept"),
            "{msg}"
        );
        assert_eq!(xz_text(&path, 16 << 20).unwrap().len(), 16 << 20);
    }

    #[test]
    fn sizes_are_said_in_round_units() {
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human(6 << 30), "6 GiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
