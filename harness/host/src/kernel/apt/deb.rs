//! Reading files out of a `.deb`: an `ar` archive whose `data.tar.*` member holds the
//! package's files.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::fetch::limits::{self, AtMost, TooLarge};

/// How much a package may unpack to. A decompression bomb (a few KiB of `.deb` that
/// decompress to GiBs) stops at these instead of filling the disk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole data archive, decompressed (files not taken count too: decompressing
    /// them costs as much).
    pub data: u64,
    /// One file taken out of it.
    pub file: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            data: limits::MAX_PACKAGE_DATA,
            file: limits::MAX_PACKAGE_FILE,
        }
    }
}

/// Copies the files of the package's data archive that `wanted` picks (it gets the path
/// inside the package, without a leading `./`, and returns the output file name) into
/// `out_dir`. Returns what was written, as (path in package, output path). Only names
/// `wanted` chose are written, never a path from the package; on failure nothing is
/// left of what was written.
pub fn extract(
    deb: &Path,
    out_dir: &Path,
    wanted: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    extract_within(deb, out_dir, Limits::default(), wanted)
}

/// [`extract`], with other limits than the defaults.
pub fn extract_within(
    deb: &Path,
    out_dir: &Path,
    limits: Limits,
    wanted: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut written = Vec::new();
    let result = with_data(deb, limits, |reader| {
        extract_tar(reader, out_dir, limits.file, &wanted, &mut written)
    });
    if result.is_err() {
        // A half-written file must not be taken for a whole one.
        for (_, out) in &written {
            std::fs::remove_file(out).ok();
        }
    }
    result.map(|()| written)
}

/// Runs `read` on the decompressed `data.tar` of the package `deb`, capped at
/// `limits.data` bytes; an error says which package and member it was about, and what
/// to do when a cap was reached.
pub fn with_data<T>(
    deb: &Path,
    limits: Limits,
    read: impl FnOnce(&mut dyn Read) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let file = std::fs::File::open(deb).with_context(|| format!("opening {}", deb.display()))?;
    let mut archive = ar::Archive::new(file);
    while let Some(member) = archive.next_entry() {
        let member = member.with_context(|| format!("reading the ar archive {}", deb.display()))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        if !name.starts_with("data.tar") {
            continue;
        }
        let reader: Box<dyn Read + '_> = match name.as_str() {
            "data.tar.xz" => Box::new(xz2::read::XzDecoder::new(member)),
            "data.tar.zst" => Box::new(crate::zstd::reader(member)?),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(member)),
            // Ubuntu 16.04's kernel packages.
            "data.tar.bz2" => Box::new(bzip2::read::BzDecoder::new(member)),
            "data.tar" => Box::new(member),
            other => bail!("{}: unsupported data member {other}", deb.display()),
        };
        let what = format!("the {name} of {}, decompressed,", deb.display());
        let mut reader = AtMost::new(reader, limits.data, what);
        return read(&mut reader).map_err(|e| {
            let e = match limits::exceeded(&e) {
                Some(too_large) => anyhow::anyhow!("{too_large}: {}", limits::TOO_LARGE_HINT),
                None => e,
            };
            e.context(format!("unpacking {name} of {}", deb.display()))
        });
    }
    bail!(
        "{} has no data.tar member: not a Debian package?",
        deb.display()
    )
}

/// Copies the wanted regular files of a data archive, each at most `max_file` bytes,
/// recording each output in `written` before writing it.
fn extract_tar(
    reader: impl Read,
    out_dir: &Path,
    max_file: u64,
    wanted: &impl Fn(&str) -> Option<String>,
    written: &mut Vec<(String, PathBuf)>,
) -> anyhow::Result<()> {
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        let Some(out_name) = wanted(&path) else {
            continue;
        };
        // The header says how large the file is, before a byte of it is decompressed.
        if entry.size() > max_file {
            return Err(TooLarge {
                what: format!("{path} ({} bytes)", entry.size()),
                cap: max_file,
            }
            .into());
        }
        let out = out_dir.join(plain_name(&out_name)?);
        written.push((path, out.clone()));
        // O_NOFOLLOW: whatever is at `out`, a symlink there is not written through.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&out)
            .with_context(|| format!("creating {}", out.display()))?;
        std::io::copy(&mut entry, &mut file)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// `name` if it is one plain file name (what `wanted` returns is bpflab's choice, but a
/// slip there must not turn into a path outside the output directory).
fn plain_name(name: &str) -> anyhow::Result<&str> {
    match Path::new(name).components().collect::<Vec<_>>().as_slice() {
        [Component::Normal(_)] => Ok(name),
        _ => bail!("`{name}` is not a plain file name to unpack a package's file to"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny .deb in memory: debian-binary, control.tar.xz, data.tar.xz.
    fn tiny_deb(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut data = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            data.append_data(&mut header, path, *content).unwrap();
        }
        let data = data.into_inner().unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut xz, &data).unwrap();
        ar_deb("data.tar.xz", xz.finish().unwrap())
    }

    /// A .deb of `debian-binary` and one data member.
    fn ar_deb(data_name: &str, data: Vec<u8>) -> Vec<u8> {
        let mut deb = ar::Builder::new(Vec::new());
        for (name, body) in [("debian-binary", b"2.0\n".to_vec()), (data_name, data)] {
            let header = ar::Header::new(name.as_bytes().to_vec(), body.len() as u64);
            deb.append(&header, body.as_slice()).unwrap();
        }
        deb.into_inner().unwrap()
    }

    /// A decompression bomb: a .deb whose data.tar.zst holds `files` of so many zeros
    /// each, a few KiB compressed however large unpacked. Written to `path`.
    fn bomb_deb(path: &Path, files: &[(&str, u64)]) {
        // The tar's zeros are one small frame of 1 MiB of zeros, repeated: zstd frames may
        // follow one another, so this is a valid stream however large it unpacks.
        const MIB: u64 = 1 << 20;
        let mib_of_zeros = crate::zstd::compress(&[0; MIB as usize]);
        let zeros = |n: u64| {
            let mut frames = mib_of_zeros.repeat((n / MIB) as usize);
            frames.extend(crate::zstd::compress(&vec![0; (n % MIB) as usize]));
            frames
        };
        let mut zst = Vec::new();
        for (name, size) in files {
            let mut header = tar::Header::new_gnu();
            header.set_path(name).unwrap();
            header.set_size(*size);
            header.set_mode(0o644);
            header.set_cksum();
            zst.extend(crate::zstd::compress(header.as_bytes()));
            zst.extend(zeros(size.div_ceil(512) * 512));
        }
        // The two empty blocks that end a tar.
        zst.extend(zeros(1024));
        std::fs::write(path, ar_deb("data.tar.zst", zst)).unwrap();
        assert!(
            std::fs::metadata(path).unwrap().len() < 1 << 20,
            "not a bomb"
        );
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_decompression_bomb_in_a_package_is_refused() {
        // A 1 GiB "kernel image", with the real caps: refused from its tar header, before
        // a byte of it is decompressed.
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("k.deb");
        bomb_deb(&deb, &[("./boot/vmlinuz-6.1.0-53-cloud-amd64", 1 << 30)]);
        let err = extract(&deb, dir.path(), |p| {
            p.starts_with("boot/vmlinuz-")
                .then(|| "vmlinuz".to_string())
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(
                "boot/vmlinuz-6.1.0-53-cloud-amd64 (1073741824 bytes) is larger than 512 MiB"
            ) && msg.contains("nothing was kept"),
            "{msg}"
        );
        assert_eq!(names_in(dir.path()), ["k.deb"], "nothing unpacked");
    }

    #[test]
    fn a_package_whose_data_decompresses_past_its_cap_is_refused() {
        // The file taken is small, but the data archive goes on, unwanted, past the cap:
        // decompression stops there, and the file already taken is removed.
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("k.deb");
        bomb_deb(
            &deb,
            &[
                ("./boot/config-6.1", 100),
                ("./usr/lib/modules/padding", 8 << 20),
            ],
        );
        let limits = Limits {
            data: 1 << 20,
            file: 1 << 20,
        };
        let err = extract_within(&deb, dir.path(), limits, |p| {
            p.starts_with("boot/config-").then(|| "config".to_string())
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("data.tar.zst of") && msg.contains("decompressed, is larger than 1 MiB"),
            "{msg}"
        );
        assert_eq!(names_in(dir.path()), ["k.deb"], "nothing kept");
    }

    #[test]
    fn output_names_are_plain_file_names() {
        assert!(plain_name("vmlinuz").is_ok());
        for bad in ["../vmlinuz", "/tmp/vmlinuz", "a/b", "", "."] {
            assert!(plain_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extracts_only_the_wanted_files() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("k.deb");
        std::fs::write(
            &deb,
            tiny_deb(&[
                ("./boot/vmlinuz-6.1.0-53-cloud-amd64", b"KERNEL"),
                ("./boot/config-6.1.0-53-cloud-amd64", b"CONFIG_BPF=y\n"),
                ("./usr/share/doc/x/changelog", b"noise"),
            ]),
        )
        .unwrap();
        let written = extract(&deb, dir.path(), |p| {
            p.starts_with("boot/vmlinuz-")
                .then(|| "vmlinuz".to_string())
        })
        .unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].0, "boot/vmlinuz-6.1.0-53-cloud-amd64");
        assert_eq!(
            std::fs::read(dir.path().join("vmlinuz")).unwrap(),
            b"KERNEL"
        );
    }

    #[test]
    fn a_bzip2_data_member_is_read() {
        let mut data = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(6);
        header.set_mode(0o600);
        header.set_cksum();
        data.append_data(
            &mut header,
            "./boot/vmlinuz-4.4.0-210-generic",
            &b"KERNEL"[..],
        )
        .unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        std::io::Write::write_all(&mut bz, &data.into_inner().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("k.deb");
        std::fs::write(&deb, ar_deb("data.tar.bz2", bz.finish().unwrap())).unwrap();
        extract(&deb, dir.path(), |p| {
            p.starts_with("boot/vmlinuz-")
                .then(|| "vmlinuz".to_string())
        })
        .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("vmlinuz")).unwrap(),
            b"KERNEL"
        );
    }

    #[test]
    fn a_file_that_is_not_a_deb_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("bogus.deb");
        std::fs::write(&bogus, b"<html>404</html>").unwrap();
        let err = extract(&bogus, dir.path(), |_| None).unwrap_err();
        assert!(format!("{err:#}").contains("bogus.deb"), "{err:#}");
    }
}
