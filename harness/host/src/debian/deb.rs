//! Reading files out of a `.deb`: an `ar` archive whose `data.tar.*` member holds the
//! package's files.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// Copies the files of the package's data archive that `wanted` picks (it gets the path
/// inside the package, without a leading `./`, and returns the output file name) into
/// `out_dir`. Returns what was written, as (path in package, output path).
pub fn extract(
    deb: &Path,
    out_dir: &Path,
    wanted: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
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
            "data.tar.zst" => Box::new(zstd::stream::read::Decoder::new(member)?),
            "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(member)),
            "data.tar" => Box::new(member),
            other => bail!("{}: unsupported data member {other}", deb.display()),
        };
        return extract_tar(reader, out_dir, &wanted)
            .with_context(|| format!("unpacking {name} of {}", deb.display()));
    }
    bail!(
        "{} has no data.tar member: not a Debian package?",
        deb.display()
    )
}

fn extract_tar(
    reader: impl Read,
    out_dir: &Path,
    wanted: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut written = Vec::new();
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
        let out = out_dir.join(out_name);
        let mut file =
            std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        std::io::copy(&mut entry, &mut file)
            .with_context(|| format!("writing {}", out.display()))?;
        written.push((path, out));
    }
    Ok(written)
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
        let data_xz = xz.finish().unwrap();

        let mut deb = ar::Builder::new(Vec::new());
        for (name, body) in [
            ("debian-binary", b"2.0\n".to_vec()),
            ("data.tar.xz", data_xz),
        ] {
            let header = ar::Header::new(name.as_bytes().to_vec(), body.len() as u64);
            deb.append(&header, body.as_slice()).unwrap();
        }
        deb.into_inner().unwrap()
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
    fn a_file_that_is_not_a_deb_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("bogus.deb");
        std::fs::write(&bogus, b"<html>404</html>").unwrap();
        let err = extract(&bogus, dir.path(), |_| None).unwrap_err();
        assert!(format!("{err:#}").contains("bogus.deb"), "{err:#}");
    }
}
