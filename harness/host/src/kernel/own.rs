//! A kernel image the user gives by path (`--kernel ./arch/x86/boot/bzImage`): checked
//! to be a file, with its build config when one lies beside it, and, for an x86-64
//! bzImage of a kernel with `CONFIG_PVH`, booted from the vmlinux inside it, as
//! distribution kernels are ([`super::pvh`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};

use super::{pvh, KernelImage, KernelVersion};
use crate::arch::Arch;
use crate::config::Config;

/// What the origin of an image given by path says when it boots through PVH.
pub const THROUGH_PVH: &str = " (its vmlinux, through PVH)";

/// The kernel at `path`, ready to boot for `arch`.
pub fn obtain(path: &Path, arch: Arch, config: &Config) -> anyhow::Result<KernelImage> {
    check_image_file(path)?;
    let kernel_config = config_beside(path);
    let vmlinux = match arch {
        // Turned off, nothing is unpacked for it either.
        Arch::X86_64 if !config.pvh => None,
        Arch::X86_64 => {
            let dir = cache_dir(config, path);
            match pvh::vmlinux_of_own(path, kernel_config.as_deref(), &dir) {
                Ok(vmlinux) => {
                    record_use(&dir, path);
                    prune_gone(config);
                    vmlinux
                }
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
        Some(_) => format!("{}{THROUGH_PVH}", path.display()),
        None => path.display().to_string(),
    };
    Ok(KernelImage {
        compressed: vmlinux.is_some().then(|| path.to_path_buf()),
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
    let dir = own_root(config);
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

/// The file in an image's cache folder that names the image (its absolute path), so the
/// folder of one since deleted can be found and removed ([`prune`]).
const SOURCE_FILE: &str = "source";

/// How long the folder of an image that is gone is kept after its last use: a run that
/// found the image a moment ago may be about to boot its vmlinux still.
const KEPT_AFTER_USE: Duration = Duration::from_secs(3600);

/// Records in `dir` (if the run made it) which image it serves, and that it was used now.
/// Best effort: a folder without the record is only never pruned.
fn record_use(dir: &Path, path: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    if !dir.is_dir() {
        return;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let file = dir.join(SOURCE_FILE);
    let named = absolute.as_os_str().as_bytes();
    match std::fs::read(&file) {
        Ok(old) if old == named => {
            if let Ok(f) = std::fs::File::options().write(true).open(&file) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
        _ => {
            let _ = std::fs::write(&file, named);
        }
    }
}

/// Removes the cache folders of images given by path that are gone, saying what that
/// freed: each is tens of megabytes, and nothing else would ever remove it.
fn prune_gone(config: &Config) {
    let (folders, bytes) = prune(&own_root(config), SystemTime::now());
    if folders > 0 {
        crate::term::status(format!(
            "removed the vmlinux unpacked for {folders} kernel image(s) given by path that \
             are gone ({} MB)",
            bytes >> 20
        ));
    }
}

/// Removes each folder below `root` whose recorded image no longer exists and that no
/// run used in the last [`KEPT_AFTER_USE`]; returns how many and their bytes. A folder
/// with no record, or an image that cannot be looked at (permissions), is kept.
fn prune(root: &Path, now: SystemTime) -> (usize, u64) {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(entries) = std::fs::read_dir(root) else {
        return (0, 0);
    };
    let mut removed = (0, 0);
    for dir in entries.flatten().map(|e| e.path()) {
        let record = dir.join(SOURCE_FILE);
        let Ok(named) = std::fs::read(&record) else {
            continue;
        };
        let image = Path::new(std::ffi::OsStr::from_bytes(&named));
        let used_lately = std::fs::metadata(&record)
            .and_then(|m| m.modified())
            .map_or(true, |t| {
                now.duration_since(t)
                    .map_or(true, |age| age < KEPT_AFTER_USE)
            });
        if used_lately || !matches!(image.try_exists(), Ok(false)) {
            continue;
        }
        let bytes = folder_bytes(&dir);
        if std::fs::remove_dir_all(&dir).is_ok() {
            removed = (removed.0 + 1, removed.1 + bytes);
        }
    }
    removed
}

fn folder_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn own_root(config: &Config) -> PathBuf {
    config.cache_dir.join("kernels").join("own")
}

/// Where the vmlinux of the image at `path` is kept: one directory per path (named by a
/// hash of its absolute form), so that rebuilding a kernel in place replaces its vmlinux
/// instead of piling up a new one per build.
fn cache_dir(config: &Config, path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let name = crate::digest::sha256_bytes(absolute.as_os_str().as_encoded_bytes());
    own_root(config).join(&name[..16])
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

    #[test]
    fn the_folder_of_an_image_since_deleted_goes_an_hour_after_its_last_use() {
        let root = tempfile::tempdir().unwrap();
        let images = tempfile::tempdir().unwrap();
        let slot = |name: &str, image: &Path| {
            let dir = root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("vmlinux"), vec![0u8; 4096]).unwrap();
            record_use(&dir, image);
            dir
        };
        let kept = images.path().join("bzImage");
        std::fs::write(&kept, "").unwrap();
        let live = slot("live", &kept);
        let gone = slot("gone", &images.path().join("deleted/bzImage"));
        let unrecorded = root.path().join("old");
        std::fs::create_dir(&unrecorded).unwrap();
        // Just used: kept, its image gone or not.
        assert_eq!(prune(root.path(), SystemTime::now()), (0, 0));
        // Two hours on, the gone image's folder goes, with its vmlinux and record.
        let later = SystemTime::now() + Duration::from_secs(7200);
        let (folders, bytes) = prune(root.path(), later);
        assert_eq!(folders, 1);
        assert!(bytes >= 4096, "{bytes}");
        assert!(!gone.exists());
        assert!(live.join("vmlinux").is_file() && unrecorded.is_dir());
        // The record says which image, and a later use refreshes it, not duplicates it.
        record_use(&live, &kept);
        let named = std::fs::read(live.join(SOURCE_FILE)).unwrap();
        assert_eq!(
            named,
            std::path::absolute(&kept)
                .unwrap()
                .as_os_str()
                .as_encoded_bytes()
        );
    }
}
