//! Building the guest agent (with the lessons' user sides in it) for the guest's arch.
//!
//! cargo does the caching, but even a build with nothing to do costs a tenth of a second
//! (on every run, KVM or not): when no file the agent is built from has changed since the
//! last build (names, sizes, modification times) and neither has the toolchain, cargo is
//! not asked at all. The agent has its own target directory so this never waits on the
//! lock of the `cargo run` or `cargo test` that started bpflab.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::arch::Arch;
use crate::term;

/// Builds the agent for `arch` and returns the binary's path.
pub fn build_agent(source_root: &Path, arch: Arch) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = source_root.join("target/guest");
    let binary = target_dir
        .join(arch.rust_target())
        .join("guest/bpflab-agent");
    let stamp_path = target_dir.join(format!("{}.sources", arch.rust_target()));
    let stamp = sources_stamp(source_root, &cargo);
    if binary.is_file() && std::fs::read_to_string(&stamp_path).ok() == Some(stamp.clone()) {
        return Ok(binary);
    }
    ensure_rust_target(arch)?;
    let mut cargo = Command::new(&cargo);
    cargo
        .current_dir(source_root)
        .args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
            "-p",
            "bpflab-agent",
            "--profile",
            "guest",
            "--target",
        ])
        .arg(arch.rust_target())
        .arg("--target-dir")
        .arg(&target_dir);
    let (status, stderr) =
        cargo_with_progress(cargo, &format!("building the guest agent for {arch}"))?;
    if !status.success() {
        bail!(
            "building the guest agent for {arch} failed (a lesson's Rust side does not compile?):\n{}",
            stderr.trim_end()
        );
    }
    if !binary.is_file() {
        bail!("cargo reported success but {} is missing", binary.display());
    }
    // Best effort: without the stamp, the next run asks cargo again.
    let _ = std::fs::write(&stamp_path, stamp);
    Ok(binary)
}

/// Runs a `cargo build --message-format=json-render-diagnostics` under a spinner that
/// counts the crates built and names the last (a first build compiles about 60, for
/// most of a minute on two cores); returns its status and its stderr (the rendered
/// diagnostics, for an error).
fn cargo_with_progress(
    mut cargo: Command,
    what: &str,
) -> anyhow::Result<(std::process::ExitStatus, String)> {
    use std::io::{BufRead as _, Read as _};
    use std::process::Stdio;
    let mut child = cargo
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo to build the guest agent")?;
    let mut stderr = child.stderr.take().context("cargo's stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let spinner = term::spinner(what.to_string());
    let mut compiled = 0;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = match line {
            Ok(line) => line,
            // Cargo's output cannot be read: stop it rather than leave it running
            // (and its pipe full) behind an error.
            Err(error) => {
                spinner.finish_and_clear();
                let _ = child.kill();
                let _ = child.wait();
                return Err(error)
                    .context("reading cargo's progress while building the guest agent");
            }
        };
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        // One artifact per crate compiled (or found up to date), and one per build
        // script, which is not a crate of its own.
        let target = &message["target"];
        let build_script = target["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "custom-build"));
        if message["reason"] == "compiler-artifact" && !build_script {
            compiled += 1;
            let name = target["name"].as_str().unwrap_or("?");
            spinner.set_message(format!("{what}: {compiled} crates built, last {name}"));
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    spinner.finish_and_clear();
    let stderr = stderr.join().unwrap_or_default();
    Ok((status, stderr))
}

/// What the agent's build depends on, summarised: every file under the directories its
/// crates come from (name, size, modification time), the workspace manifests, cargo's
/// configuration, and the toolchain (the cargo binary's identity and the environment
/// variables that change how it compiles).
fn sources_stamp(source_root: &Path, cargo: &std::ffi::OsStr) -> String {
    use std::fmt::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    let mut text = String::new();
    let mut describe = |path: &Path| {
        if let Ok(meta) = path.metadata() {
            let _ = writeln!(
                text,
                "{} {} {}.{}",
                path.display(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            );
        }
    };
    for top in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
        "rust-toolchain.toml",
        "rust-toolchain",
        "harness/agent",
        "harness/guest",
        "harness/protocol",
        "lessons",
        // Patched dependencies (aya).
        "vendor",
    ] {
        for entry in walkdir::WalkDir::new(source_root.join(top))
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            describe(entry.path());
        }
    }
    let cargo_path =
        crate::tools::which(&cargo.to_string_lossy()).unwrap_or_else(|| PathBuf::from(cargo));
    describe(&cargo_path);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC",
    ] {
        let _ = writeln!(text, "{var}={:?}", std::env::var_os(var));
    }
    crate::digest::sha256_bytes(text.as_bytes())
}

/// The guest agent is a static musl binary; its Rust standard library comes with the
/// target. rustup can add it, so bpflab does, once.
fn ensure_rust_target(arch: Arch) -> anyhow::Result<()> {
    let target = arch.rust_target();
    let sysroot = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .is_dir()
    {
        return Ok(());
    }
    if crate::tools::which("rustup").is_none() {
        bail!("the Rust target {target} is missing and rustup is not available to add it");
    }
    term::status(format!(
        "adding the Rust target {target} (once) with rustup"
    ));
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("`rustup target add {target}` failed; run it yourself and try again");
    }
    Ok(())
}
