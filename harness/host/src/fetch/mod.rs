//! Downloads: with a progress bar, a hash check, size and idle limits, and nothing left
//! behind on failure.

pub mod limits;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};

use crate::term;

/// What a download must turn out to be.
#[derive(Debug, Clone)]
pub struct Expected {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// How long a server may send nothing before bpflab gives up on it: far longer than a
/// congested mirror pauses, short enough that a stalled one does not hang bpflab. It
/// bounds the silence, not the whole transfer: a large kernel on a slow link still
/// finishes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client with timeouts suited to mirrors: fail fast when unreachable or stalled,
/// but let a slow mirror finish a large file.
pub fn agent() -> ureq::Agent {
    agent_with_idle_timeout(IDLE_TIMEOUT)
}

/// [`agent`] with another idle timeout (tests stall a server for less than 30 s).
pub fn agent_with_idle_timeout(idle: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // Restarted by every read from the socket, headers and body alike: an idle
        // timeout. (`timeout_recv_body` would be a deadline for the whole body.)
        .timeout_per_read(Some(idle))
        .user_agent(concat!("bpflab/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The most a download may bring.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// The size the (signed) index lists: one byte more is not the file.
    Listed(u64),
    /// No size is known in advance: a cap for this kind of file.
    Cap(u64),
}

impl Limit {
    fn bytes(self) -> u64 {
        match self {
            Limit::Listed(n) | Limit::Cap(n) => n,
        }
    }

    fn exceeded(self, url: &str) -> anyhow::Error {
        match self {
            Limit::Listed(n) => anyhow::anyhow!(
                "downloading {url}: the mirror sent more than the {n} bytes the index lists; \
                 nothing was kept. If this repeats, the mirror is broken: choose another mirror"
            ),
            Limit::Cap(n) => anyhow::anyhow!(
                "downloading {url}: the server sent more than {}, far more than such a file \
                 is; nothing was kept. The server is broken or serves something else",
                limits::human(n)
            ),
        }
    }
}

/// Downloads `url` to `dest`. With `expected`, the size and SHA-256 must match or the
/// download is discarded, and it stops as soon as more than the expected size arrives;
/// without, it stops past [`limits::MAX_UNSIZED_DOWNLOAD`]. The file appears at `dest`
/// only once complete and verified.
pub fn download(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    expected: Option<&Expected>,
    label: &str,
) -> anyhow::Result<()> {
    let limit = match expected {
        Some(e) => Limit::Listed(e.size),
        None => Limit::Cap(limits::MAX_UNSIZED_DOWNLOAD),
    };
    download_within(agent, url, dest, expected, limit, label)
}

/// Downloads `url`, whose size is not known in advance, to `dest`, refusing more than
/// `max` bytes. The file appears at `dest` only once complete.
pub fn download_at_most(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    max: u64,
    label: &str,
) -> anyhow::Result<()> {
    download_within(agent, url, dest, None, Limit::Cap(max), label)
}

fn download_within(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    expected: Option<&Expected>,
    limit: Limit,
    label: &str,
) -> anyhow::Result<()> {
    let dir = dest
        .parent()
        .context("download destination has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| crate::interrupt::or_interrupted(describe_http_error(url, e)))?;
    let announced: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    // A server announcing too much is refused before a byte of the body is read.
    if announced.is_some_and(|n| n > limit.bytes()) {
        return Err(limit.exceeded(url));
    }
    let bar = term::byte_progress(label, expected.map(|e| e.size).or(announced));
    // A temporary file in the destination directory: removed if anything below fails,
    // renamed into place (atomically) if everything succeeds.
    let mut partial = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut reader = response.body_mut().as_reader();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        crate::interrupt::check()?;
        let n = reader
            .read(&mut buf)
            .map_err(|e| body_error(agent, url, Some(total), e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        // Stop at the first byte too many: a server that keeps sending fills no disk.
        if total > limit.bytes() {
            return Err(limit.exceeded(url));
        }
        hasher.update(&buf[..n]);
        partial
            .write_all(&buf[..n])
            .with_context(|| format!("writing {label} to disk"))?;
        bar.set_position(total);
    }
    bar.finish_and_clear();
    if let Some(exp) = expected {
        let actual = hex::encode(hasher.finalize());
        if total != exp.size {
            bail!(
                "downloading {url}: got {total} bytes, the archive index says {}: the download was \
                 cut short or the mirror is serving a different file; nothing was kept, run again",
                exp.size
            );
        }
        if actual != exp.sha256 {
            bail!(
                "downloading {url}: SHA-256 mismatch (got {actual}, the archive index says {}); \
                 nothing was kept. If this repeats, the mirror is broken: choose another mirror",
                exp.sha256,
            );
        }
    }
    partial.as_file().sync_all().ok();
    partial
        .persist(dest)
        .with_context(|| format!("moving the download into {}", dest.display()))?;
    Ok(())
}

/// Whether trying another package, mirror or source cannot help after `error`: the user
/// pressed Ctrl-C, or this machine's disk refused (full, read-only, forbidden). Callers
/// that fall back from one source to the next stop at such an error.
pub fn no_other_source_helps(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind::*;
    error.is::<crate::interrupt::Interrupted>()
        || error.chain().any(|cause| {
            cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    StorageFull | QuotaExceeded | ReadOnlyFilesystem | PermissionDenied
                )
            })
        })
}

/// The mirror answered that it does not have a file (HTTP 404): the one failure after
/// which trying another listed package is reasonable (mirrors lag behind their indexes).
#[derive(Debug, thiserror::Error)]
#[error("{0}: not found on the mirror (HTTP 404)")]
pub struct NotOnMirror(pub String);

/// Whether `error` is (or was caused by) a [`NotOnMirror`].
pub fn is_not_found(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<NotOnMirror>())
}

/// Fetches a small text file (an index) into memory.
pub fn fetch_text(agent: &ureq::Agent, url: &str) -> anyhow::Result<String> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| crate::interrupt::or_interrupted(describe_http_error(url, e)))?;
    response
        .body_mut()
        .with_config()
        .limit(limits::MAX_TEXT)
        .read_to_string()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => Limit::Cap(limits::MAX_TEXT).exceeded(url),
            other => body_error(agent, url, None, other.into_io()),
        })
}

/// The error for a body that stopped arriving (after `received` bytes, where they are
/// counted): the server went silent for the agent's idle timeout, the user pressed
/// Ctrl-C, or the connection broke.
fn body_error(
    agent: &ureq::Agent,
    url: &str,
    received: Option<u64>,
    error: std::io::Error,
) -> anyhow::Error {
    let stalled = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|e| matches!(e, ureq::Error::Timeout(ureq::Timeout::PerRead)));
    let after = received.map_or(String::new(), |n| format!(" after {n} bytes"));
    let error = if stalled {
        let idle = agent.config().timeout_per_read().unwrap_or(IDLE_TIMEOUT);
        anyhow::anyhow!(
            "downloading {url}: the mirror stopped sending (no data for {} s){after}; nothing \
             was kept, run again",
            idle.as_secs_f64()
        )
    } else {
        let cut = received.map_or(String::new(), |n| format!(" (interrupted after {n} bytes)"));
        anyhow::Error::new(error).context(format!("downloading {url}{cut}"))
    };
    crate::interrupt::or_interrupted(error)
}

fn describe_http_error(url: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::StatusCode(404) => anyhow::Error::new(NotOnMirror(url.to_string())),
        ureq::Error::StatusCode(code) => anyhow::anyhow!("{url}: the mirror answered HTTP {code}"),
        ureq::Error::Timeout(_) => anyhow::anyhow!(
            "{url}: the mirror did not answer (no response within its timeout); check the \
             network, run again"
        ),
        other => anyhow::anyhow!("{url}: unreachable ({other}); check the network"),
    }
}

#[cfg(test)]
mod tests;
