//! Downloads: with a progress bar, a hash check, and nothing left behind on failure.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};

use crate::ui;

/// What a download must turn out to be.
#[derive(Debug, Clone)]
pub struct Expected {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// An HTTP client with timeouts suited to mirrors: fail fast when unreachable, but let a
/// slow mirror finish a large file.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("bpflab/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Downloads `url` to `dest`. With `expected`, the size and SHA-256 must match or the
/// download is discarded. The file appears at `dest` only once complete and verified.
pub fn download(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    expected: Option<&Expected>,
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
    let length = expected.map(|e| e.size).or_else(|| {
        response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    let bar = ui::byte_progress(label, length);
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
            .with_context(|| format!("downloading {url} (interrupted after {total} bytes)"))
            .map_err(crate::interrupt::or_interrupted)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        partial
            .write_all(&buf[..n])
            .with_context(|| format!("writing {label} to disk"))?;
        total += n as u64;
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
                crate::debian::mirror::MIRROR_ENV
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
        .limit(64 << 20)
        .read_to_string()
        .with_context(|| format!("reading {url}"))
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn describe_http_error(url: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::StatusCode(404) => anyhow::Error::new(NotOnMirror(url.to_string())),
        ureq::Error::StatusCode(code) => anyhow::anyhow!("{url}: the mirror answered HTTP {code}"),
        other => anyhow::anyhow!("{url}: unreachable ({other}); check the network"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

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

    #[test]
    fn hashes_match_known_values() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(sha256_file(&f).unwrap(), sha256_bytes(b"abc"));
    }
}
