//! A tampering HTTP proxy on loopback between bpflab and the real mirrors (the host's
//! Debian mirror; Ubuntu's, where one is configured): it forges what an attacker on the
//! network could, and records what bpflab asked for. bpflab is pointed at it through its
//! mirror variables: `/archive/` and `/security/` stand for Debian's mirrors, `/ubuntu/`
//! for Ubuntu's.
//!
//! The runs see no `gpgv` and no `gpg` on their PATH: bpflab checks signatures itself,
//! with the keys it ships, and needs nothing from the host for it.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bpflab::kernel::apt::{mirror::Mirrors, Distribution};

/// What the proxy forges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
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

/// The real mirrors behind the proxy.
#[derive(Debug, Clone)]
struct Upstreams {
    debian: Option<Mirrors>,
    ubuntu: Option<Mirrors>,
}

pub struct Proxy {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    upstreams: Upstreams,
}

const FORGED_PACKAGES: &[u8] = b"forged Packages.xz";

/// The configured mirror of `distribution` (environment, config file, apt sources).
pub fn mirror_of(distribution: Distribution) -> Option<Mirrors> {
    let config = bpflab::config::Config::load().unwrap();
    Mirrors::discover(&config, distribution).ok()
}

impl Proxy {
    pub fn start(attack: Attack) -> Proxy {
        let upstreams = Upstreams {
            debian: mirror_of(Distribution::Debian),
            ubuntu: mirror_of(Distribution::Ubuntu),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, up) = (requests.clone(), upstreams.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (up, seen) = (up.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &up, attack, &seen);
                });
            }
        });
        Proxy {
            port,
            requests,
            upstreams,
        }
    }

    /// Runs bpflab against this proxy with an empty cache and no OpenPGP tools on PATH.
    pub fn bpflab(&self, args: &[&str]) -> (Output, String) {
        let scratch = tempfile::tempdir().unwrap();
        let path = path_without_openpgp_tools(scratch.path());
        let url = |prefix: &str| format!("http://127.0.0.1:{}/{prefix}", self.port);
        let mut command = Command::new(env!("CARGO_BIN_EXE_bpflab"));
        command
            .args(args)
            .env("PATH", path)
            .env_remove("BPFLAB_INSECURE_SKIP_SIGNATURES")
            .env("BPFLAB_CACHE_DIR", scratch.path().join("cache"));
        for distribution in Distribution::ALL {
            command.env_remove(distribution.keyring_env());
        }
        if self.upstreams.debian.is_some() {
            command
                .env("BPFLAB_DEBIAN_MIRROR", url("archive"))
                .env("BPFLAB_DEBIAN_SECURITY_MIRROR", url("security"));
        }
        if self.upstreams.ubuntu.is_some() {
            command.env("BPFLAB_UBUNTU_MIRROR", url("ubuntu"));
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output, stderr)
    }

    pub fn requested(&self, needle: &str) -> Vec<String> {
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

/// The real URL behind a path of the proxy's.
fn upstream_url(upstreams: &Upstreams, path: &str) -> Option<String> {
    let base = |m: &Option<Mirrors>, security: bool| {
        m.as_ref().and_then(|m| match security {
            true => m.security.clone(),
            false => Some(m.archive.clone()),
        })
    };
    let routes = [
        ("/archive/", base(&upstreams.debian, false)),
        ("/security/", base(&upstreams.debian, true)),
        ("/ubuntu/", base(&upstreams.ubuntu, false)),
    ];
    routes.into_iter().find_map(|(prefix, base)| {
        let rest = path.strip_prefix(prefix)?;
        Some(format!("{}/{rest}", base?))
    })
}

/// Reads an HTTP request's method and path (and its headers, which are passed over).
pub fn read_request(stream: &TcpStream) -> std::io::Result<(String, String)> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace().map(str::to_string);
    Ok((
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    ))
}

fn serve(
    stream: TcpStream,
    upstreams: &Upstreams,
    attack: Attack,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let (method, path) = read_request(&stream)?;
    let path = path.as_str();
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
    let Some(upstream) = upstream_url(upstreams, path) else {
        return reply(&mut out, "404 Not Found", b"");
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

/// Runs lesson 1 on `series` behind a proxy that corrupts every `.deb`, and checks the
/// pinned kernel is refused by its hash with nothing sought in its place. Returns
/// bpflab's messages.
pub fn a_corrupt_pinned_kernel_is_refused(series: &str) -> String {
    let proxy = Proxy::start(Attack::CorruptDebs);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", series]);
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
    stderr
}

pub fn assert_refused(output: &Output, stderr: &str, needle: &str) {
    assert!(!output.status.success(), "the run must fail:\n{stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in:\n{stderr}");
    assert!(!stderr.contains("passed"), "{stderr}");
}
