//! Unpacking a `.deb`'s files as a tree below a root directory, as dpkg would below `/`:
//! directories, regular files with their modes, symbolic links and hard links. For
//! programs run from bpflab's cache (QEMU, clang), whose libraries, data and headers
//! find each other by path.
//!
//! Nothing is written outside the root: paths must be plain relative paths, nothing is
//! written through a symbolic link, and an absolute link target is made relative to the
//! root (as if the root were `/`). Documentation is left out.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};

use super::deb::{self, Limits};

/// What one package put below the root: each file or link, with its size (0 for a link),
/// for a later check that the tree is still whole.
pub type Manifest = Vec<(PathBuf, u64)>;

/// Directories of a package that nothing bpflab runs reads.
const LEFT_OUT: &[&str] = &[
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/locale",
    "usr/share/bug",
];

/// Unpacks every file of the package `deb` below `root`.
pub fn unpack(deb: &Path, root: &Path) -> anyhow::Result<Manifest> {
    deb::with_data(deb, Limits::default(), |reader| {
        unpack_tar(reader, root, Limits::default().file)
    })
}

fn unpack_tar(reader: &mut dyn Read, root: &Path, max_file: u64) -> anyhow::Result<Manifest> {
    let mut manifest = Vec::new();
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let Some(rel) = relative(&raw)? else {
            continue; // `./` itself
        };
        if LEFT_OUT.iter().any(|dir| rel.starts_with(dir)) {
            continue;
        }
        let out = root.join(&rel);
        ensure_no_link_between(root, &rel)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        remove_existing(&out)?;
        if kind.is_symlink() {
            let target = entry
                .link_name()?
                .context("a symbolic link without a target")?;
            let target = within_root(&rel, &target);
            std::os::unix::fs::symlink(&target, &out)
                .with_context(|| format!("linking {}", out.display()))?;
            manifest.push((rel, 0));
        } else if kind.is_hard_link() {
            let source = entry.link_name()?.context("a hard link without a target")?;
            let source = relative(&source)?.context("a hard link to the root")?;
            ensure_no_link_between(root, &source)?;
            std::fs::hard_link(root.join(&source), &out)
                .with_context(|| format!("linking {} to {}", out.display(), source.display()))?;
            let size = std::fs::metadata(&out)?.len();
            manifest.push((rel, size));
        } else if kind.is_file() {
            let size = entry.size();
            anyhow::ensure!(
                size <= max_file,
                crate::fetch::limits::TooLarge {
                    what: format!("{} ({size} bytes)", rel.display()),
                    cap: max_file,
                }
            );
            let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode | 0o200)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            std::io::copy(&mut entry, &mut file)
                .with_context(|| format!("writing {}", out.display()))?;
            manifest.push((rel, size));
        }
        // Device nodes and FIFOs: no package bpflab unpacks has any, and none is made.
    }
    Ok(manifest)
}

/// A tar path as a plain relative path (`./usr/bin/x` → `usr/bin/x`); `None` for the
/// root itself; an error for anything that would leave the root.
fn relative(path: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            _ => bail!(
                "the package names a path outside its root ({}); nothing of it is used",
                path.display()
            ),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Fails if a directory on the way to `rel` below `root` is a symbolic link: writing
/// through it could reach outside the root.
fn ensure_no_link_between(root: &Path, rel: &Path) -> anyhow::Result<()> {
    let mut at = root.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for part in &parents[..parents.len().saturating_sub(1)] {
        at.push(part);
        if at
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            bail!(
                "the package puts {} below the symbolic link {}, which bpflab does not \
                 write through; nothing of it is used",
                rel.display(),
                at.display()
            );
        }
    }
    Ok(())
}

/// Removes whatever an earlier package left at `path` (a file or a link; two packages
/// may ship the same file), never what a link points to.
fn remove_existing(path: &Path) -> anyhow::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => bail!("{} is a directory in another package", path.display()),
        Ok(_) => {
            std::fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))
        }
        Err(_) => Ok(()),
    }
}

/// The target of a link at `link` (relative to the root) as a relative path that stays
/// in the root: an absolute target is taken from the root, and `..` stops at the root,
/// as they would for a program whose `/` is the root.
fn within_root(link: &Path, target: &Path) -> PathBuf {
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    if !target.is_absolute() {
        let dir = link.parent().unwrap_or(Path::new(""));
        resolved.extend(dir.iter().map(ToOwned::to_owned));
    }
    for component in target.components() {
        match component {
            Component::Normal(part) => resolved.push(part.to_owned()),
            Component::ParentDir => {
                resolved.pop();
            }
            _ => {}
        }
    }
    let depth = link.components().count().saturating_sub(1);
    let mut out = PathBuf::new();
    for _ in 0..depth {
        out.push("..");
    }
    out.extend(resolved);
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_stay_in_the_root() {
        let at = |link: &str, target: &str| within_root(Path::new(link), Path::new(target));
        assert_eq!(
            at("usr/bin/clang", "../lib/llvm-14/bin/clang"),
            Path::new("../../usr/lib/llvm-14/bin/clang")
        );
        assert_eq!(
            at("usr/share/qemu/bios.bin", "/usr/share/seabios/bios.bin"),
            Path::new("../../../usr/share/seabios/bios.bin")
        );
        // Climbing past the root stops there, as `..` of `/` is `/`.
        assert_eq!(
            at("usr/lib/x", "../../../../../etc/passwd"),
            Path::new("../../etc/passwd")
        );
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        assert_eq!(
            relative(Path::new("./usr/bin/x")).unwrap(),
            Some(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(relative(Path::new("./")).unwrap(), None);
        assert!(relative(Path::new("../etc/x")).is_err());
        assert!(relative(Path::new("/etc/x")).is_err());
    }

    /// A tar of a link `usr/lib/evil` → `/`, then a file below it: refused, and nothing
    /// is written outside the root.
    #[test]
    fn nothing_is_written_through_a_link() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        tar.append_link(&mut link, "./usr/lib/evil", "/tmp")
            .unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(1);
        file.set_mode(0o644);
        file.set_cksum();
        tar.append_data(&mut file, "./usr/lib/evil/planted", &b"x"[..])
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        let root = tempfile::tempdir().unwrap();
        let err = unpack_tar(&mut bytes.as_slice(), root.path(), 1 << 20).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not write through"),
            "{err:#}"
        );
        let link = std::fs::read_link(root.path().join("usr/lib/evil")).unwrap();
        assert_eq!(link, Path::new("../../tmp"), "rewritten into the root");
        assert!(!Path::new("/tmp/planted").exists());
    }

    #[test]
    fn files_keep_their_modes_and_documentation_is_left_out() {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, mode) in [
            ("./usr/bin/tool", 0o755),
            ("./usr/share/doc/tool/README", 0o644),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(2);
            header.set_mode(mode);
            header.set_cksum();
            tar.append_data(&mut header, path, &b"hi"[..]).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let root = tempfile::tempdir().unwrap();
        let manifest = unpack_tar(&mut bytes.as_slice(), root.path(), 1 << 20).unwrap();
        assert_eq!(manifest, vec![(PathBuf::from("usr/bin/tool"), 2)]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(root.path().join("usr/bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert!(!root.path().join("usr/share/doc").exists());
    }
}
