//! Unpacking a source tarball so that nothing lands outside its tree.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use std::io::BufReader;

use anyhow::{bail, Context as _};

use crate::fetch::limits::{self, AtMost};

/// How much a source tarball may unpack to.
#[derive(Debug, Clone, Copy)]
struct TreeLimits {
    /// The tar stream, decompressed.
    bytes: u64,
    /// Its entries: files, directories, links.
    entries: u64,
}

const SOURCE_TREE: TreeLimits = TreeLimits {
    bytes: limits::MAX_SOURCE_TREE_BYTES,
    entries: limits::MAX_SOURCE_TREE_ENTRIES,
};

/// Unpacks a `.tar.xz` or `.tar.bz2` kernel source into `dest`, which must not exist yet, dropping its
/// top directory. The tarball comes from the network: every entry must stay inside
/// `dest` (see [`Tree::unpack`]) and the whole within [`SOURCE_TREE`], or nothing is
/// kept (`dest` is removed) and the error names the entry.
pub(super) fn unpack_source(tarball: &Path, dest: &Path) -> anyhow::Result<()> {
    unpack_source_within(tarball, dest, SOURCE_TREE)
}

fn unpack_source_within(tarball: &Path, dest: &Path, caps: TreeLimits) -> anyhow::Result<()> {
    // A fresh directory: nothing in it was put there by anyone else (no planted symlink).
    std::fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
    let result = unpack_tree(tarball, dest, caps);
    if result.is_err() {
        std::fs::remove_dir_all(dest).ok();
    }
    result.map_err(|e| {
        if let Some(too_large) = limits::exceeded(&e) {
            return anyhow::anyhow!(
                "unpacking {}: {too_large}: {}",
                tarball.display(),
                limits::TOO_LARGE_HINT
            );
        }
        let hint = match e.is::<Refused>() {
            true => {
                ". Delete it to fetch the source again; if this repeats, it is not a kernel source"
            }
            false => "",
        };
        e.context(format!(
            "unpacking {}; nothing was kept{hint}",
            tarball.display()
        ))
    })
}

/// An entry of a source tarball that could reach outside the tree.
#[derive(Debug, thiserror::Error)]
#[error("the entry `{entry}` {why}")]
struct Refused {
    entry: String,
    why: String,
}

fn unpack_tree(tarball: &Path, dest: &Path, caps: TreeLimits) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(tarball).with_context(|| format!("opening {}", tarball.display()))?;
    let raw = BufReader::new(file);
    // Debian's and kernel.org's sources are xz, Ubuntu's linux-source-* bzip2.
    let decompressed: Box<dyn Read> = match tarball.extension().and_then(|e| e.to_str()) {
        Some("bz2") => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
        _ => Box::new(xz2::read::XzDecoder::new(raw)),
    };
    let mut archive = tar::Archive::new(AtMost::new(
        decompressed,
        caps.bytes,
        "the source, decompressed,",
    ));
    let mut tree = Tree {
        root: dest,
        files: HashSet::new(),
    };
    for (count, entry) in archive.entries()?.enumerate() {
        crate::interrupt::check()?;
        if count as u64 >= caps.entries {
            bail!(
                "the source has more than {} entries, bpflab's cap for a kernel tree (a 6.x \
                 tree has about 90,000); a real tree this large would be a bpflab bug, please \
                 report it",
                caps.entries
            );
        }
        tree.unpack(&mut entry?)?;
    }
    Ok(())
}

/// A source tree being unpacked, and what it holds so far.
struct Tree<'a> {
    root: &'a Path,
    /// The regular files unpacked, relative to the root: the only targets a hard link may
    /// have.
    files: HashSet<PathBuf>,
}

impl Tree<'_> {
    /// Unpacks one entry, refusing anything that could reach outside the tree: a path
    /// that is not plain names below the top directory (`..`, absolute), a symlink out of
    /// the tree, a hard link to anything but a file already unpacked, a write through a
    /// symlink (git trees never have files below a symlink), and special files.
    fn unpack(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> anyhow::Result<()> {
        let name = entry.path()?.into_owned();
        let kind = entry.header().entry_type();
        // git archive's commit id; nothing to unpack.
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let refuse = |why: &str| {
            anyhow::Error::new(Refused {
                entry: name.display().to_string(),
                why: why.to_string(),
            })
        };
        let Some(rel) = below_top(&name).map_err(refuse)? else {
            return Ok(());
        };
        self.make_parents(&rel).map_err(|why| refuse(&why))?;
        let target = self.root.join(&rel);
        let link = || {
            entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.into_owned())
                .ok_or_else(|| refuse("is a link without a target"))
        };
        match kind {
            tar::EntryType::Directory => self.make_dir(&rel).map_err(|why| refuse(&why))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                entry
                    .unpack(&target)
                    .with_context(|| format!("unpacking `{}`", name.display()))?;
                self.files.insert(rel);
            }
            tar::EntryType::Symlink => {
                let to = link()?;
                symlink_stays_inside(&rel, &to)
                    .map_err(|why| refuse(&format!("{why} (to `{}`)", to.display())))?;
                std::os::unix::fs::symlink(&to, &target)
                    .with_context(|| format!("unpacking the symlink `{}`", name.display()))?;
            }
            tar::EntryType::Link => {
                let to = link()?;
                let to_rel = below_top(&to)
                    .ok()
                    .flatten()
                    .filter(|t| self.files.contains(t))
                    .ok_or_else(|| {
                        refuse(&format!(
                            "is a hard link to `{}`, which is not a file unpacked before it",
                            to.display()
                        ))
                    })?;
                std::fs::hard_link(self.root.join(to_rel), &target)
                    .with_context(|| format!("unpacking the hard link `{}`", name.display()))?;
            }
            other => return Err(refuse(&format!("is a {other:?}, which no source tree has"))),
        }
        Ok(())
    }

    /// Creates the directories above `rel` that do not exist yet; each that does must be
    /// a real directory, never a symlink that would take the write elsewhere.
    fn make_parents(&self, rel: &Path) -> Result<(), String> {
        let mut ancestors: Vec<&Path> = rel.ancestors().skip(1).collect();
        ancestors.pop(); // the empty path: the root itself
        for dir in ancestors.into_iter().rev() {
            self.make_dir(dir)?;
        }
        Ok(())
    }

    fn make_dir(&self, rel: &Path) -> Result<(), String> {
        let path = self.root.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(meta) if meta.file_type().is_symlink() => Err(format!(
                "would be written through the symlink `{}`",
                rel.display()
            )),
            Ok(_) => Err(format!(
                "needs `{}` to be a directory, but it is a file",
                rel.display()
            )),
            Err(_) => std::fs::create_dir(&path)
                .map_err(|e| format!("cannot create `{}`: {e}", rel.display())),
        }
    }
}

/// An archive path without its top directory (`linux-6.1/`): `None` for the top
/// directory itself, an error unless every component is a plain name.
fn below_top(path: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut components = path.components();
    let plain = |c: Component<'_>| match c {
        Component::Normal(_) => Ok(()),
        Component::ParentDir => Err("leaves the source tree (`..`)"),
        Component::RootDir | Component::Prefix(_) => Err("is an absolute path"),
        Component::CurDir => Err("does not start with the tree's top directory"),
    };
    match components.next() {
        Some(top) => plain(top)?,
        None => return Err("has an empty name"),
    }
    let rest: PathBuf = components.clone().collect();
    for c in components {
        plain(c)?;
    }
    Ok((!rest.as_os_str().is_empty()).then_some(rest))
}

/// Whether a symlink at `link` (relative to the tree's root) to `to` resolves inside the
/// tree: a relative target that climbs (`..`) at most to the root, and only before its
/// first name: a `..` after a name would climb out of wherever a symlinked directory of
/// that name led. Kernel trees' own symlinks (`arch/arm64/boot/dts/arm ->
/// ../../../arm/boot/dts`) are of that shape.
fn symlink_stays_inside(link: &Path, to: &Path) -> Result<(), &'static str> {
    let mut depth = link.components().count().saturating_sub(1);
    let mut named = false;
    if to.as_os_str().is_empty() {
        return Err("is a symlink without a target");
    }
    for c in to.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(_) => named = true,
            Component::ParentDir if named => {
                return Err("is a symlink that climbs (`..`) after a name, out of reach of a check")
            }
            Component::ParentDir if depth == 0 => {
                return Err("is a symlink out of the source tree")
            }
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => {
                return Err("is a symlink to an absolute path, out of the source tree")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
