//! Faults around the kernel cache, injected for real: a download stopped by Ctrl-C or
//! killed outright, two bpflab processes fetching the same kernel at once, and a cache on
//! a full disk. Nothing partial may ever be kept or used, and the next run must recover
//! by itself.
//!
//! Downloads go through a small HTTP proxy in front of the host's Debian mirror, which can
//! slow the kernel package down to a trickle (so the test can interrupt it mid-way) or
//! hold it back for a moment (so two runs overlap).

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// Only the proxy's request reading is used here.
#[allow(dead_code)]
mod common;

use bpflab::arch::Arch;
use bpflab::kernel::apt::{mirror::Mirrors, Distribution};

/// How the proxy passes `.deb` files on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Pace {
    /// As fast as the mirror sends them.
    Full = 0,
    /// 64 KiB every 200 ms: a download that takes minutes.
    Trickle = 1,
    /// Three seconds' wait before the first byte, then full speed.
    Late = 2,
}

struct Proxy {
    port: u16,
    pace: Arc<AtomicU8>,
    deb_bytes: Arc<AtomicU64>,
}

impl Proxy {
    fn start(pace: Pace) -> Proxy {
        let config = bpflab::config::Config::load().unwrap();
        let mirrors = Mirrors::discover(&config, Distribution::Debian)
            .expect("the tests need a Debian mirror (the host's apt sources)");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pace = Arc::new(AtomicU8::new(pace as u8));
        let deb_bytes = Arc::new(AtomicU64::new(0));
        let (p, d) = (pace.clone(), deb_bytes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, p, d) = (mirrors.clone(), p.clone(), d.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &m, &p, &d);
                });
            }
        });
        Proxy {
            port,
            pace,
            deb_bytes,
        }
    }

    fn set_pace(&self, pace: Pace) {
        self.pace.store(pace as u8, Ordering::SeqCst);
    }

    /// A bpflab command whose mirror is this proxy, with its own cache and temp dir.
    fn bpflab(&self, args: &[&str], cache: &Path, tmp: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bpflab"));
        cmd.args(args)
            .env(
                "BPFLAB_DEBIAN_MIRROR",
                format!("http://127.0.0.1:{}/archive", self.port),
            )
            .env(
                "BPFLAB_DEBIAN_SECURITY_MIRROR",
                format!("http://127.0.0.1:{}/security", self.port),
            )
            .env("BPFLAB_CACHE_DIR", cache)
            .env("TMPDIR", tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// Answers one request from the real mirror, at the pace set for `.deb` files.
fn serve(
    stream: TcpStream,
    mirrors: &Mirrors,
    pace: &AtomicU8,
    deb_bytes: &AtomicU64,
) -> std::io::Result<()> {
    let (method, path) = common::proxy::read_request(&stream)?;
    let (method, path) = (method.as_str(), path.as_str());
    let upstream = match (
        path.strip_prefix("/archive/"),
        path.strip_prefix("/security/"),
    ) {
        (Some(rest), _) => format!("{}/{rest}", mirrors.archive),
        (_, Some(rest)) => format!("{}/{rest}", mirrors.security.as_deref().unwrap_or("")),
        _ => String::new(),
    };
    let mut out = stream;
    let http = bpflab::fetch::agent();
    let response = match method {
        "HEAD" => http.head(&upstream).call(),
        _ => http.get(&upstream).call(),
    };
    let mut response = match response {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(code)) => {
            return write!(
                out,
                "HTTP/1.1 {code} Upstream\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Err(_) => {
            return write!(
                out,
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        }
    };
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n")?;
    if let Some(length) = length {
        write!(out, "Content-Length: {length}\r\n")?;
    }
    write!(out, "\r\n")?;
    if method == "HEAD" {
        return Ok(());
    }
    let is_deb = path.ends_with(".deb");
    let mut body = response.body_mut().as_reader();
    let mut buf = vec![0u8; 64 << 10];
    let mut first = true;
    loop {
        let current = pace.load(Ordering::SeqCst);
        if is_deb && first && current == Pace::Late as u8 {
            std::thread::sleep(Duration::from_secs(3));
        }
        first = false;
        let n = body.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
        if is_deb {
            deb_bytes.fetch_add(n as u64, Ordering::SeqCst);
            if pace.load(Ordering::SeqCst) == Pace::Trickle as u8 {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Waits until the proxy has passed `bytes` of a kernel package to `child`.
fn wait_for_download(proxy: &Proxy, child: &mut Child, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while proxy.deb_bytes.load(Ordering::SeqCst) < bytes {
        assert!(
            Instant::now() < deadline,
            "the kernel download never started"
        );
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("bpflab ended ({status}) before the download began:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a run must not leave in a cache: scratch files and directories (hidden names,
/// other than the lock files, which are empty and meant to stay), and kernel entries
/// without the record that marks them complete.
fn leftovers(cache: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(cache)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| e.path().to_path_buf())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let hidden_scratch = name.starts_with('.') && !name.ends_with(".lock");
            let incomplete_entry = p.parent() == kernel_entry(cache).parent()
                && p.is_dir()
                && !name.starts_with('.')
                && !p.join("record.json").is_file();
            hidden_scratch || incomplete_entry
        })
        .collect()
}

/// Everything in a directory that should be empty.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn kernel_entry(cache: &Path) -> PathBuf {
    cache
        .join("kernels")
        .join(Arch::host().unwrap().name())
        .join("6.1")
}

/// Runs lesson 1 again on the same cache at full speed: it must pass.
fn assert_next_run_recovers(proxy: &Proxy, cache: &Path, tmp: &Path) -> String {
    proxy.set_pace(Pace::Full);
    let output = proxy.bpflab(&["lesson", "1"], cache, tmp).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "the next run failed:\n{stderr}");
    assert!(kernel_entry(cache).join("record.json").is_file());
    stderr
}

#[test]
fn ctrl_c_during_a_kernel_download_keeps_nothing_and_the_next_run_recovers() {
    let (cache, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let proxy = Proxy::start(Pace::Trickle);
    let mut child = proxy
        .bpflab(&["lesson", "1"], cache.path(), tmp.path())
        .spawn()
        .unwrap();
    wait_for_download(&proxy, &mut child, 256 << 10);
    // SAFETY: a signal to our own child, whose pid is still ours (not yet reaped).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    assert!(!kernel_entry(cache.path()).exists());
    assert_eq!(leftovers(cache.path()), Vec::<PathBuf>::new());
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());

    assert_next_run_recovers(&proxy, cache.path(), tmp.path());
}

#[test]
fn a_download_killed_outright_is_never_used_and_its_remains_are_cleared() {
    let (cache, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let proxy = Proxy::start(Pace::Trickle);
    let mut child = proxy
        .bpflab(&["lesson", "1"], cache.path(), tmp.path())
        .spawn()
        .unwrap();
    wait_for_download(&proxy, &mut child, 256 << 10);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    // What a killed process leaves: a half-written package in a scratch directory.
    let remains = leftovers(cache.path());
    assert!(
        remains
            .iter()
            .any(|p| p.to_string_lossy().contains("/.6.1-")),
        "{remains:?}"
    );
    assert!(!kernel_entry(cache.path()).exists());

    let stderr = assert_next_run_recovers(&proxy, cache.path(), tmp.path());
    assert!(
        stderr.contains("left by a bpflab that was killed"),
        "{stderr}"
    );
    assert_eq!(leftovers(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn two_runs_at_once_share_one_download() {
    let (cache, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The package arrives late, so the second run surely finds the first still fetching.
    let proxy = Proxy::start(Pace::Late);
    let first = proxy
        .bpflab(&["lesson", "1"], cache.path(), tmp.path())
        .spawn()
        .unwrap();
    let second = proxy
        .bpflab(&["lesson", "1"], cache.path(), tmp.path())
        .spawn()
        .unwrap();
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let all: String = outputs.iter().map(stderr_of).collect();
    for output in &outputs {
        assert!(output.status.success(), "{all}");
    }
    assert_eq!(all.matches("downloaded kernel 6.1").count(), 1, "{all}");
    let waited = regex_lite::Regex::new(
        r"waiting for another bpflab \(pid \d+\) to finish fetching kernel 6\.1",
    )
    .unwrap();
    assert!(waited.is_match(&all), "{all}");
    assert_eq!(leftovers(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_full_disk_is_a_clear_error_and_keeps_nothing() {
    // A cache on an 8 MiB tmpfs, too small for any kernel package. Mounting it needs a
    // mount namespace: root has one for the asking, other users get it from an
    // unprivileged user namespace.
    let (cache, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let proxy = Proxy::start(Pace::Full);
    let inner = proxy.bpflab(&["lesson", "1"], cache.path(), tmp.path());
    let namespace = bpflab::tools::private_mount_namespace().unwrap();
    // Run bpflab, then list what is left on the full disk, from inside the namespace
    // (whole entries aside: indexes, and the tools' versions, each written by a rename).
    let script = r#"mount -t tmpfs -o size=8m bpflab-full "$BPFLAB_CACHE_DIR" || exit 99
"$0" "$@"; echo "exit status $?" >&2
find "$BPFLAB_CACHE_DIR" -mindepth 1 ! -name '*.lock' ! -path '*/apt-indexes*' \
    ! -path '*/provision' ! -path '*/provision/versions*' -printf 'left: %p\n' >&2"#;
    let mut cmd = Command::new(&namespace[0]);
    cmd.args(&namespace[1..])
        .args(["sh", "-c", script])
        .arg(inner.get_program());
    cmd.args(inner.get_args());
    for (key, value) in inner.get_envs() {
        cmd.env(key, value.unwrap());
    }
    let output = cmd.output().expect("unshare (util-linux) is needed");
    let stderr = stderr_of(&output);
    assert!(
        !stderr.contains("exit status 99"),
        "could not mount: {stderr}"
    );
    assert!(stderr.contains("exit status 1"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("hint: the disk is full"), "{stderr}");
    let left: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("left: "))
        .filter(|l| !l.ends_with("/kernels") && !l.ends_with(Arch::host().unwrap().name()))
        .collect();
    assert!(left.is_empty(), "{left:?}\n{stderr}");
    assert_eq!(entries(tmp.path()), Vec::<PathBuf>::new());
}
