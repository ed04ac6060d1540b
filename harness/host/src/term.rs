//! bpflab's own lines on the terminal: status lines, hints and progress bars. A leaf that
//! imports nothing of bpflab, so every stage can report without knowing how a run is
//! shown. Progress bars hide themselves when stderr is not a terminal (CI logs, tests).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A one-line status message on stderr.
pub fn status(msg: impl AsRef<str>) {
    eprintln!("bpflab: {}", msg.as_ref());
}

/// A status message shown once per process: where a tool comes from is news on the first
/// run of a `bench` or `matrix`, not on each of the dozens after it.
pub fn status_once(msg: impl AsRef<str>) {
    static SHOWN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let first = SHOWN
        .lock()
        .map(|mut shown| shown.insert(msg.as_ref().to_string()))
        .unwrap_or(true);
    if first {
        status(msg);
    }
}

/// Advice for an error whose cause has a known remedy, shown under it.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| {
        let io = cause.downcast_ref::<std::io::Error>()?;
        // By kind, not errno: wrappers such as tempfile's keep the kind, not the errno.
        match io.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Some(
                "the disk is full: free some space, or move bpflab's cache (BPFLAB_CACHE_DIR) or \
                 temporary files (TMPDIR) to a disk with room. Nothing half-written was kept; \
                 run again once there is room",
            ),
            _ => None,
        }
    })
}

/// A spinner for work of unknown length.
pub fn spinner(msg: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
    );
    bar.set_message(msg.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A byte counter for a download of known (or unknown) size.
pub fn byte_progress(label: &str, len: Option<u64>) -> ProgressBar {
    let bar = match len {
        Some(len) => {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        }
        None => spinner(""),
    };
    bar.set_message(format!("downloading {label}"));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_anywhere_in_the_chain_gets_the_hint() {
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC))
            .context("writing /cache/.download-x");
        assert!(hint(&full).unwrap().contains("the disk is full"));
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(hint(&other), None);
    }
}
