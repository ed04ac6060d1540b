//! The chain of trust from Debian's signing keys to the kernel bpflab boots, attacked for
//! real: a tampering HTTP proxy on loopback sits between bpflab and the host's Debian
//! mirror and forges what an attacker on the network could. Every attack must end in a
//! clear refusal, with nothing downloaded past the point where the forgery was found.
//!
//! These runs see no `gpgv` and no `gpg` on their PATH: bpflab checks signatures itself,
//! with the keys it ships, and needs nothing from the host for it.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bpflab::kernel::debian::mirror::Mirrors;

/// What the proxy forges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    /// Appends a second `SHA256:` section after each InRelease's signature, naming a
    /// forged `Packages.xz` (which it serves if asked).
    AppendAfterSignature,
    /// Serves each InRelease's text without its signature.
    StripSignature,
    /// Serves `.deb` files with one byte changed (same length).
    CorruptDebs,
    /// Answers 404 for every `.deb`.
    HideDebs,
}

struct Proxy {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

const FORGED_PACKAGES: &[u8] = b"forged Packages.xz";

impl Proxy {
    fn start(attack: Attack) -> Proxy {
        let mirrors = Mirrors::discover(&bpflab::config::Config::load().unwrap())
            .expect("the tests need a Debian mirror (the host's apt sources)");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, seen) = (mirrors.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &m, attack, &seen);
                });
            }
        });
        Proxy { port, requests }
    }

    /// Runs bpflab against this proxy with an empty cache and no OpenPGP tools on PATH.
    fn bpflab(&self, args: &[&str]) -> (Output, String) {
        let scratch = tempfile::tempdir().unwrap();
        let path = path_without_openpgp_tools(scratch.path());
        let output = Command::new(env!("CARGO_BIN_EXE_bpflab"))
            .args(args)
            .env("PATH", path)
            .env_remove("BPFLAB_DEBIAN_KEYRING")
            .env_remove("BPFLAB_INSECURE_SKIP_SIGNATURES")
            .env(
                "BPFLAB_DEBIAN_MIRROR",
                format!("http://127.0.0.1:{}/archive", self.port),
            )
            .env(
                "BPFLAB_DEBIAN_SECURITY_MIRROR",
                format!("http://127.0.0.1:{}/security", self.port),
            )
            .env("BPFLAB_CACHE_DIR", scratch.path().join("cache"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output, stderr)
    }

    fn requested(&self, needle: &str) -> Vec<String> {
        let all = self.requests.lock().unwrap();
        all.iter().filter(|r| r.contains(needle)).cloned().collect()
    }
}

/// A PATH like this process's, with every `gpg*` program hidden: a directory of links to
/// everything else in PATH's directories.
fn path_without_openpgp_tools(scratch: &Path) -> PathBuf {
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("gpg") || bin.join(&name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
        }
    }
    assert!(!bin.join("gpgv").exists());
    bin
}

fn serve(
    stream: TcpStream,
    mirrors: &Mirrors,
    attack: Attack,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or(""),
    );
    seen.lock().unwrap().push(format!("{method} {path}"));
    let mut out = stream;
    let reply = |out: &mut TcpStream, status: &str, body: &[u8]| -> std::io::Result<()> {
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        if method != "HEAD" {
            out.write_all(body)?;
        }
        Ok(())
    };
    if path.ends_with(".deb") && attack == Attack::HideDebs {
        return reply(&mut out, "404 Not Found", b"");
    }
    if path.ends_with("Packages.xz") && attack == Attack::AppendAfterSignature {
        return reply(&mut out, "200 OK", FORGED_PACKAGES);
    }
    let upstream = match (
        path.strip_prefix("/archive/"),
        path.strip_prefix("/security/"),
    ) {
        (Some(rest), _) => format!("{}/{rest}", mirrors.archive),
        (_, Some(rest)) => format!("{}/{rest}", mirrors.security.as_deref().unwrap_or("")),
        _ => return reply(&mut out, "404 Not Found", b""),
    };
    let http = bpflab::fetch::agent();
    let mut body = Vec::new();
    match http.get(&upstream).call() {
        Ok(mut response) => {
            response.body_mut().as_reader().read_to_end(&mut body)?;
        }
        Err(ureq::Error::StatusCode(code)) => {
            return reply(&mut out, &format!("{code} Upstream"), b"");
        }
        Err(_) => return reply(&mut out, "502 Bad Gateway", b""),
    }
    if path.ends_with("/InRelease") {
        body = forge_inrelease(&body, attack);
    }
    if path.ends_with(".deb") && attack == Attack::CorruptDebs && !body.is_empty() {
        let middle = body.len() / 2;
        body[middle] ^= 0xff;
    }
    reply(&mut out, "200 OK", &body)
}

fn forge_inrelease(real: &[u8], attack: Attack) -> Vec<u8> {
    let text = String::from_utf8_lossy(real).into_owned();
    match attack {
        Attack::AppendAfterSignature => {
            let sha = bpflab::digest::sha256_bytes(FORGED_PACKAGES);
            let size = FORGED_PACKAGES.len();
            format!(
                "{text}SHA256:\n {sha} {size} main/binary-amd64/Packages.xz\n \
                 {sha} {size} main/binary-arm64/Packages.xz\n"
            )
            .into_bytes()
        }
        Attack::StripSignature => {
            let body = text.split_once("\n\n").map(|(_, b)| b).unwrap_or(&text);
            let body = body
                .split("-----BEGIN PGP SIGNATURE-----")
                .next()
                .unwrap_or(body);
            body.as_bytes().to_vec()
        }
        _ => real.to_vec(),
    }
}

fn assert_refused(output: &Output, stderr: &str, needle: &str) {
    assert!(!output.status.success(), "the run must fail:\n{stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in:\n{stderr}");
    assert!(!stderr.contains("passed"), "{stderr}");
}

#[test]
fn a_section_appended_after_the_inrelease_signature_is_never_read() {
    let proxy = Proxy::start(Attack::AppendAfterSignature);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "5.10", "--refresh-kernel"]);
    assert_refused(&output, &stderr, "InRelease is refused");
    assert!(
        !proxy.requested("/InRelease").is_empty(),
        "{:?}",
        proxy.requested("")
    );
    assert_eq!(
        proxy.requested("Packages"),
        Vec::<String>::new(),
        "the forged index was fetched"
    );
    assert_eq!(proxy.requested(".deb"), Vec::<String>::new());
}

#[test]
fn an_unsigned_inrelease_is_refused_without_gpgv_on_the_host() {
    let proxy = Proxy::start(Attack::StripSignature);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "5.10", "--refresh-kernel"]);
    assert_refused(&output, &stderr, "not a well-formed OpenPGP signed message");
    assert_eq!(proxy.requested("Packages"), Vec::<String>::new());
}

#[test]
fn a_pinned_kernel_that_fails_its_hash_is_never_replaced() {
    let proxy = Proxy::start(Attack::CorruptDebs);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "6.1"]);
    assert_refused(&output, &stderr, "SHA-256 mismatch");
    assert!(stderr.contains("no other package was tried"), "{stderr}");
    assert_eq!(
        proxy.requested(".deb").len(),
        1,
        "{:?}",
        proxy.requested("")
    );
    assert_eq!(
        proxy.requested("InRelease"),
        Vec::<String>::new(),
        "no other package was sought"
    );
}

#[test]
fn a_pinned_kernel_missing_from_the_mirror_is_never_replaced() {
    let proxy = Proxy::start(Attack::HideDebs);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "6.1"]);
    assert_refused(&output, &stderr, "not found on the mirror");
    assert!(
        stderr.contains("kernels update"),
        "says how to move on: {stderr}"
    );
    assert_eq!(
        proxy.requested("InRelease"),
        Vec::<String>::new(),
        "no other package was sought"
    );
}

#[test]
fn a_package_that_fails_its_signed_hash_ends_the_search() {
    let proxy = Proxy::start(Attack::CorruptDebs);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "6.1", "--refresh-kernel"]);
    assert_refused(&output, &stderr, "no other package was tried");
    assert_eq!(
        proxy.requested(".deb").len(),
        1,
        "{:?}",
        proxy.requested(".deb")
    );
}
