//! A kernel image the user gives by path (`--kernel ./arch/x86/boot/bzImage`): checked
//! to be a file, with its build config when one lies beside it, and, for an x86-64
//! bzImage of a kernel with `CONFIG_PVH`, booted from the vmlinux inside it, as
//! distribution kernels are ([`super::pvh`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::{pvh, KernelImage, KernelVersion};
use crate::arch::Arch;
use crate::config::Config;

/// The kernel at `path`, ready to boot for `arch`.
pub fn obtain(path: &Path, arch: Arch, config: &Config) -> anyhow::Result<KernelImage> {
    check_image_file(path)?;
    let kernel_config = config_beside(path);
    let vmlinux = match arch {
        Arch::X86_64 => {
            match pvh::vmlinux_of_own(path, kernel_config.as_deref(), &cache_dir(config, path)) {
                Ok(vmlinux) => vmlinux,
                Err(e) if e.is::<pvh::Damaged>() => return Err(e),
                // A cache that cannot be written (read-only, full) costs this run its
                // speed-up, not the run.
                Err(e) => {
                    crate::term::status(format!(
                        "booting {} as it is, not through PVH: {e:#}",
                        path.display()
                    ));
                    None
                }
            }
        }
        Arch::Arm64 => None,
    };
    let origin = match &vmlinux {
        Some(_) => format!("{} (its vmlinux, through PVH)", path.display()),
        None => path.display().to_string(),
    };
    Ok(KernelImage {
        series: "custom".into(),
        arch,
        image: vmlinux.unwrap_or_else(|| path.to_path_buf()),
        config: kernel_config,
        origin,
        version: KernelVersion::of_image(path),
        btf: None,
        package: None,
    })
}

/// A build config beside the image, which lets bpflab check the kernel before booting it:
/// `<image>.config` (`bzImage.config`, `vmlinuz-6.1.0-56-cloud-amd64.config`), else
/// `config`.
fn config_beside(path: &Path) -> Option<PathBuf> {
    let mut own = path.as_os_str().to_owned();
    own.push(".config");
    [PathBuf::from(own), path.with_file_name("config")]
        .into_iter()
        .find(|c| c.is_file())
}

/// What the cache holds of kernels given by path: the folder, how many vmlinux files and
/// their bytes (for `bpflab kernels`); `None` when it holds none.
pub fn cached(config: &Config) -> Option<(PathBuf, usize, u64)> {
    let dir = config.cache_dir.join("kernels").join("own");
    let sizes: Vec<u64> = walkdir::WalkDir::new(&dir)
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "vmlinux")
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect();
    (!sizes.is_empty()).then(|| (dir, sizes.len(), sizes.iter().sum()))
}

/// Where the vmlinux of the image at `path` is kept: one directory per path (named by a
/// hash of its absolute form), so that rebuilding a kernel in place replaces its vmlinux
/// instead of piling up a new one per build.
fn cache_dir(config: &Config, path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let name = crate::digest::sha256_bytes(absolute.as_os_str().as_encoded_bytes());
    config
        .cache_dir
        .join("kernels")
        .join("own")
        .join(&name[..16])
}

/// A kernel image given by path is a regular file (or a link to one): QEMU cannot boot a
/// directory, and a device such as /dev/zero would be read forever.
fn check_image_file(path: &Path) -> anyhow::Result<()> {
    let what = "give the path of a kernel image file (bzImage, vmlinux, arm64 Image) or a \
                series (`bpflab kernels` lists them)";
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => bail!(
            "kernel image {} is not a regular file but a {}: {what}",
            path.display(),
            file_kind(meta.file_type())
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("kernel image {} does not exist: {what}", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("reading kernel image {}", path.display())),
    }
}

fn file_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_dir() {
        "directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "device"
    } else if kind.is_fifo() {
        "named pipe"
    } else {
        "socket"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_path_that_is_no_regular_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let message = |path: &Path| format!("{:#}", check_image_file(path).unwrap_err());
        assert!(message(Path::new("/dev/zero")).contains("is not a regular file but a device"));
        assert!(message(dir.path()).contains("is not a regular file but a directory"));
        let missing = message(&dir.path().join("bzImage"));
        assert!(missing.contains("does not exist"), "{missing}");
        let image = dir.path().join("vmlinuz");
        std::fs::write(&image, b"kernel").unwrap();
        check_image_file(&image).unwrap();
    }

    #[test]
    fn the_config_beside_an_image_is_its_own_else_the_folder_s() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("vmlinuz-6.1.0-56-cloud-amd64");
        assert_eq!(config_beside(&image), None);
        std::fs::write(dir.path().join("config"), "").unwrap();
        assert_eq!(config_beside(&image), Some(dir.path().join("config")));
        let own = dir.path().join("vmlinuz-6.1.0-56-cloud-amd64.config");
        std::fs::write(&own, "").unwrap();
        assert_eq!(config_beside(&image), Some(own));
        // Not another image's: bzImage.old does not take bzImage.config.
        std::fs::write(dir.path().join("bzImage.config"), "").unwrap();
        let old = dir.path().join("bzImage.old");
        assert_eq!(config_beside(&old), Some(dir.path().join("config")));
    }
}
