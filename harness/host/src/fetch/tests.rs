//! Downloads against loopback servers that misbehave on purpose.

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
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {claimed_len}\r\nConnection: close\r\n\r\n"
            );
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
    let err = download_at_most(&agent(), &url, &dir.path().join("k"), 1 << 20, "test").unwrap_err();
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
