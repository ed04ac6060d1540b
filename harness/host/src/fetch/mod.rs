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
                 nothing was kept. If this repeats, the mirror is broken: choose another with {}",
                crate::kernel::debian::mirror::MIRROR_ENV
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
                 nothing was kept. If this repeats, the mirror is broken: choose another with \
                 {}",
                exp.sha256,
                crate::kernel::debian::mirror::MIRROR_ENV
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
mod tests {
    use super::*;
    use crate::digest::sha256_bytes;

    use std::io::{BufRead, BufReader};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// Serves one HTTP response per connection on loopback: `body`, announced with
    /// `claimed_len` bytes (more than `body` to simulate a cut connection), or a 404.
    fn serve(body: &'static [u8], claimed_len: usize, status: u16) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {claimed_len}\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(head.as_bytes());
                if status == 200 {
                    let _ = stream.write_all(body);
                }
            }
        });
        format!("http://{addr}/file")
    }

    /// Reads one request's headers from `stream`.
    fn read_request(stream: &TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
    }

    /// A server that answers one request with headers (no length, `close`-delimited) and
    /// then zeros without end, as long as the client reads: 256 MiB at most, so that a
    /// client that never stops still ends. Returns the URL and the bytes sent so far.
    fn serve_forever() -> (String, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&stream);
            let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).unwrap();
            let chunk = vec![0u8; 1 << 16];
            while counter.load(Ordering::SeqCst) < 256 << 20 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
                counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        });
        (format!("http://{addr}/pool/k.deb"), sent)
    }

    /// A server that announces `announced` bytes, sends `first`, then holds the
    /// connection open without sending anything more for `silence`.
    fn serve_then_stall(first: &'static [u8], announced: usize, silence: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&stream);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\n\r\n");
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(first).unwrap();
            std::thread::sleep(silence);
        });
        format!("http://{addr}/pool/k.deb")
    }

    fn expected_for(body: &[u8]) -> Expected {
        Expected {
            sha256: sha256_bytes(body),
            size: body.len() as u64,
        }
    }

    /// Downloads `url` into a fresh directory, expecting `body`; returns the directory,
    /// the destination and the result.
    fn download_expecting(
        url: &str,
        body: &[u8],
    ) -> (tempfile::TempDir, std::path::PathBuf, anyhow::Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("k");
        let result = download(&agent(), url, &dest, Some(&expected_for(body)), "test");
        (dir, dest, result)
    }

    fn files_in(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path()).unwrap().count()
    }

    #[test]
    fn a_verified_download_lands_complete() {
        let url = serve(b"kernel bytes", 12, 200);
        let (dir, dest, result) = download_expecting(&url, b"kernel bytes");
        result.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"kernel bytes");
        assert_eq!(files_in(&dir), 1, "no temporary file left");
    }

    #[test]
    fn a_hash_mismatch_keeps_nothing() {
        let url = serve(b"tampered!!!!", 12, 200);
        let (dir, _, result) = download_expecting(&url, b"kernel bytes");
        let err = result.unwrap_err();
        assert!(format!("{err:#}").contains("SHA-256 mismatch"), "{err:#}");
        assert_eq!(files_in(&dir), 0, "nothing kept");
    }

    #[test]
    fn a_truncated_download_keeps_nothing() {
        let url = serve(b"kernel", 12, 200);
        let (dir, _, result) = download_expecting(&url, b"kernel bytes");
        let msg = format!("{:#}", result.unwrap_err());
        assert!(
            msg.contains("interrupted") || msg.contains("cut short"),
            "{msg}"
        );
        assert_eq!(files_in(&dir), 0, "nothing kept");
    }

    #[test]
    fn a_mirror_that_keeps_streaming_is_cut_off_at_the_listed_size() {
        let (url, sent) = serve_forever();
        let listed = Expected {
            sha256: sha256_bytes(b"whatever"),
            size: 1 << 20,
        };
        let dir = tempfile::tempdir().unwrap();
        let result = download(&agent(), &url, &dir.path().join("k"), Some(&listed), "test");
        let msg = format!("{:#}", result.unwrap_err());
        assert!(
            msg.contains("the mirror sent more than the 1048576 bytes the index lists")
                && msg.contains("nothing was kept"),
            "{msg}"
        );
        assert_eq!(files_in(&dir), 0, "nothing kept");
        // The client hung up at the first byte too many: beyond the listed MiB, the server
        // got rid of no more than what the sockets' buffers hold.
        std::thread::sleep(Duration::from_millis(200));
        let sent = sent.load(Ordering::SeqCst);
        assert!(sent < 32 << 20, "the server sent {sent} bytes");
    }

    #[test]
    fn a_download_without_a_listed_size_stops_at_its_cap() {
        let (url, _) = serve_forever();
        let dir = tempfile::tempdir().unwrap();
        let err =
            download_at_most(&agent(), &url, &dir.path().join("k"), 1 << 20, "test").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sent more than 1 MiB"), "{msg}");
        assert_eq!(files_in(&dir), 0, "nothing kept");
    }

    #[test]
    fn a_mirror_announcing_more_than_the_index_lists_is_refused_before_the_body() {
        let url = serve(b"kernel bytes and then some", 26, 200);
        let (dir, _, result) = download_expecting(&url, b"kernel bytes");
        let msg = format!("{:#}", result.unwrap_err());
        assert!(msg.contains("sent more than the 12 bytes"), "{msg}");
        assert_eq!(files_in(&dir), 0, "nothing kept");
    }

    #[test]
    fn a_mirror_that_stalls_after_the_headers_is_given_up() {
        let url = serve_then_stall(b"the first bytes", 1000, Duration::from_secs(20));
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let agent = agent_with_idle_timeout(Duration::from_millis(500));
        let err = download(&agent, &url, &dir.path().join("k"), None, "test").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("the mirror stopped sending (no data for 0.5 s) after 15 bytes")
                && msg.contains("nothing was kept, run again"),
            "{msg}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(files_in(&dir), 0, "nothing kept");
    }

    #[test]
    fn not_found_and_unreachable_are_told_apart() {
        let url = serve(b"", 0, 404);
        let dir = tempfile::tempdir().unwrap();
        let err = download(&agent(), &url, &dir.path().join("k"), None, "test").unwrap_err();
        assert!(err.to_string().contains("not found on the mirror"), "{err}");
        // A port nothing listens on: connection refused at once.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = fetch_text(&agent(), &format!("http://{closed}/InRelease")).unwrap_err();
        assert!(err.to_string().contains("unreachable"), "{err}");
    }
}
