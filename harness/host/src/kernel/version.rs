//! Which Linux release a kernel image is, read from the image itself: an x86 bzImage
//! names it in its boot header, an uncompressed image (a `vmlinux`, an arm64 `Image`)
//! holds the banner `Linux version …`. What is booted can depend on it (old kernels need
//! another machine under emulation: see [`crate::vm::qemu::Machine::default_for`]).

use std::io::Read as _;
use std::path::Path;

/// A kernel's major and minor version: `4.4`, `6.12`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct KernelVersion {
    /// `4` in 4.4.
    pub major: u32,
    /// `4` in 4.4.
    pub minor: u32,
}

impl KernelVersion {
    /// A version at the start of `text`: `4.4.0-210-generic`, `6.12`, `7.3-rc`.
    pub fn parse(text: &str) -> Option<KernelVersion> {
        let mut numbers = text.split(|c: char| !c.is_ascii_digit());
        let major = numbers.next()?.parse().ok()?;
        let minor = numbers.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// The version an image file says it is, if it says.
    pub fn of_image(path: &Path) -> Option<KernelVersion> {
        // The banner of an uncompressed kernel is in its read-only data, a few MiB in; no
        // kernel bpflab boots is larger than this.
        const MOST: u64 = 128 << 20;
        // A bzImage says it in its header, within the first 64 KiB (`kernel_version` is a
        // 16-bit offset): read the rest only for a banner.
        const HEADER: u64 = 64 << 10;
        let mut file = std::fs::File::open(path).ok()?;
        let mut bytes = Vec::new();
        (&mut file).take(HEADER).read_to_end(&mut bytes).ok()?;
        if let Some(version) = KernelVersion::from_bzimage(&bytes) {
            return Some(version);
        }
        file.take(MOST - HEADER).read_to_end(&mut bytes).ok()?;
        KernelVersion::from_banner(&bytes)
    }

    /// From an x86 bzImage's boot header (the Linux boot protocol, 2.00 and later):
    /// `kernel_version` at 0x20e points, 0x200 bytes on, at `4.4.0-210-generic (…)`.
    pub fn from_bzimage(image: &[u8]) -> Option<KernelVersion> {
        let at = |offset: usize| -> Option<u16> {
            Some(u16::from_le_bytes([
                *image.get(offset)?,
                *image.get(offset + 1)?,
            ]))
        };
        if image.get(0x202..0x206)? != b"HdrS" || at(0x206)? < 0x0200 {
            return None;
        }
        let text = image.get(usize::from(at(0x20e)?) + 0x200..)?;
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        KernelVersion::parse(std::str::from_utf8(&text[..end]).ok()?)
    }

    /// From the `Linux version 6.12.…` banner in an uncompressed kernel.
    pub fn from_banner(image: &[u8]) -> Option<KernelVersion> {
        const BANNER: &[u8] = b"Linux version ";
        image
            .windows(BANNER.len())
            .enumerate()
            .filter(|(_, w)| *w == BANNER)
            .find_map(|(at, _)| {
                let rest = &image[at + BANNER.len()..];
                let rest = &rest[..rest.len().min(32)];
                KernelVersion::parse(&String::from_utf8_lossy(rest))
            })
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32) -> Option<KernelVersion> {
        Some(KernelVersion { major, minor })
    }

    #[test]
    fn versions_parse_from_releases_and_series() {
        assert_eq!(KernelVersion::parse("4.4.0-210-generic"), v(4, 4));
        assert_eq!(KernelVersion::parse("7.3-rc"), v(7, 3));
        assert_eq!(KernelVersion::parse("6.12.117+deb13-cloud-amd64"), v(6, 12));
        assert_eq!(KernelVersion::parse("custom"), None);
        assert!(v(4, 15) < v(5, 8) && v(5, 10) > v(5, 8));
    }

    /// A bzImage's first sectors as the boot protocol lays them out.
    fn bzimage(version: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020du16.to_le_bytes());
        let text_at: u16 = 0x0c00 - 0x200;
        image[0x20e..0x210].copy_from_slice(&text_at.to_le_bytes());
        image[0x0c00..0x0c00 + version.len()].copy_from_slice(version.as_bytes());
        image
    }

    #[test]
    fn a_bzimage_says_its_version_in_its_header() {
        let image = bzimage("4.4.0-210-generic (buildd@lgw01-amd64-009) #242-Ubuntu");
        assert_eq!(KernelVersion::from_bzimage(&image), v(4, 4));
        // No header magic: not a bzImage.
        let mut other = image.clone();
        other[0x202] = b'X';
        assert_eq!(KernelVersion::from_bzimage(&other), None);
        // A pointer past the end is no version, not a panic.
        other = image;
        other[0x20e..0x210].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(KernelVersion::from_bzimage(&other), None);
    }

    #[test]
    fn an_uncompressed_kernel_says_it_in_its_banner() {
        let mut image = b"\x7fELF....Linux version %s".to_vec();
        image.extend_from_slice(b"\0Linux version 6.12.117-minimal (bpflab) #1");
        assert_eq!(KernelVersion::from_banner(&image), v(6, 12));
        assert_eq!(KernelVersion::from_banner(b"no banner"), None);
    }

    #[test]
    fn a_real_cached_kernel_says_its_version_when_present() {
        let Some(cache) = dirs::cache_dir() else {
            return;
        };
        let image = cache.join("bpflab/kernels/x86_64/6.1/vmlinuz");
        if image.is_file() {
            assert_eq!(KernelVersion::of_image(&image), v(6, 1));
        }
    }
}
