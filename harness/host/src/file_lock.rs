//! One bpflab at a time works on a cache entry; the others wait and then use its result.
//!
//! An entry is built in a scratch directory beside it (`.<name>-XXXXXX`) and renamed into
//! place when complete. A bpflab that was killed (SIGKILL, power loss) cannot remove its
//! scratch directory; whoever holds the lock next knows that no one else can be using one,
//! and removes it.

use std::fs::File;
use std::path::Path;

use anyhow::Context as _;

use crate::term;

/// A held lock on one cache entry; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

/// Locks the entry `name` in `parent`, waiting (and saying so) while another bpflab holds
/// it, then removes scratch directories that a killed bpflab left for this entry.
pub fn acquire(parent: &Path, name: &str, what: &str) -> anyhow::Result<EntryLock> {
    std::fs::create_dir_all(parent).with_context(|| {
        format!(
            "creating the cache directory {} (set BPFLAB_CACHE_DIR to use another)",
            parent.display()
        )
    })?;
    let path = parent.join(format!(".{name}.lock"));
    let mut file = open_lock_file(&path)?;
    if file.try_lock().is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        let holder = match holder.trim() {
            "" => String::new(),
            pid => format!(" (pid {pid})"),
        };
        term::status(format!(
            "waiting for another bpflab{holder} to finish {what}"
        ));
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    // Only the holder may rewrite the file: before the lock, it names the current one.
    write_holder(&mut file).with_context(|| format!("writing {}", path.display()))?;
    remove_stale_scratch(parent, name);
    Ok(EntryLock { _file: file })
}

/// Opens (creating) the lock file without truncating it, and never through a symlink: a
/// link planted in a shared cache would make bpflab create or lock a file elsewhere.
fn open_lock_file(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => anyhow::anyhow!(
                "the lock file {} is a symbolic link, which bpflab does not follow: remove it \
                 (and check who put it there)",
                path.display()
            ),
            _ => {
                anyhow::Error::new(e).context(format!("creating the lock file {}", path.display()))
            }
        })
}

/// Records this process as the holder, for whoever waits next.
fn write_holder(file: &mut File) -> std::io::Result<()> {
    use std::io::{Seek as _, Write as _};
    file.set_len(0)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())
}

/// The prefix of scratch directories for entry `name`.
pub fn scratch_prefix(name: &str) -> String {
    format!(".{name}-")
}

fn remove_stale_scratch(parent: &Path, name: &str) {
    let prefix = scratch_prefix(name);
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        // `.6.1-XXXXXX` but not `.6.1-minimal-XXXXXX`, another entry's scratch.
        let Some(suffix) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        if suffix.contains('-') || !entry.path().is_dir() {
            continue;
        }
        term::status(format!(
            "removing {}, left by a bpflab that was killed",
            entry.path().display()
        ));
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_runs_scratch_is_removed_by_the_next_holder_and_only_its_own() {
        let parent = tempfile::tempdir().unwrap();
        let stale = parent.path().join(".6.1-Ab12Cd");
        std::fs::create_dir_all(stale.join("deep")).unwrap();
        std::fs::write(stale.join("deep/package.deb"), b"half").unwrap();
        let other = parent.path().join(".6.1-minimal-Xy34Zw");
        std::fs::create_dir(&other).unwrap();
        let entry = parent.path().join("6.1");
        std::fs::create_dir(&entry).unwrap();

        let lock = acquire(parent.path(), "6.1", "fetching kernel 6.1").unwrap();
        assert!(!stale.exists());
        assert!(other.exists(), "another entry's scratch was removed");
        assert!(entry.exists());
        drop(lock);
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_untouched() {
        let parent = tempfile::tempdir().unwrap();
        let target = parent.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        std::os::unix::fs::symlink(&target, parent.path().join(".6.1.lock")).unwrap();
        let err = acquire(parent.path(), "6.1", "fetching kernel 6.1").unwrap_err();
        assert!(
            format!("{err:#}").contains("is a symbolic link, which bpflab does not follow"),
            "{err:#}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        // A dangling link is not followed to create its target either.
        let elsewhere = parent.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, parent.path().join(".x.lock")).unwrap();
        assert!(acquire(parent.path(), "x", "x").is_err());
        assert!(!elsewhere.exists());
    }

    #[test]
    fn the_holder_is_recorded_only_once_the_lock_is_held() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join(".x.lock");
        let first = acquire(parent.path(), "x", "x").unwrap();
        let me = format!("{}\n", std::process::id());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), me);
        // A second opener that has not got the lock yet leaves the holder's record alone.
        let waiting = open_lock_file(&path).unwrap();
        assert!(waiting.try_lock().is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), me);
        drop((waiting, first));
    }

    #[test]
    fn a_second_holder_waits_for_the_first() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let parent = tempfile::tempdir().unwrap();
        let first = acquire(parent.path(), "x", "x").unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let (dir, seen) = (parent.path().to_path_buf(), released.clone());
        let waiter = std::thread::spawn(move || {
            let _second = acquire(&dir, "x", "x").unwrap();
            seen.load(Ordering::SeqCst)
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(first);
        assert!(
            waiter.join().unwrap(),
            "the second got the lock while the first held it"
        );
    }
}
