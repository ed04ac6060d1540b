//! Building the guest agent (with the lessons' user sides in it) for the guest's arch.
//!
//! cargo does the caching: an unchanged tree costs a fraction of a second. The agent has
//! its own target directory so this never waits on the lock of the `cargo run` or
//! `cargo test` that started bpflab.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::arch::Arch;
use crate::ui;

/// Builds the agent for `arch` and returns the binary's path.
pub fn build_agent(source_root: &Path, arch: Arch) -> anyhow::Result<PathBuf> {
    ensure_rust_target(arch)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = source_root.join("target/guest");
    let spinner = ui::spinner(format!("building the guest agent for {arch}"));
    let output = Command::new(&cargo)
        .current_dir(source_root)
        .args([
            "build",
            "--quiet",
            "-p",
            "bpflab-agent",
            "--profile",
            "guest",
            "--target",
        ])
        .arg(arch.rust_target())
        .arg("--target-dir")
        .arg(&target_dir)
        .output()
        .context("running cargo to build the guest agent")?;
    spinner.finish_and_clear();
    if !output.status.success() {
        bail!(
            "building the guest agent for {arch} failed (a lesson's Rust side does not compile?):\n{}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    let binary = target_dir
        .join(arch.rust_target())
        .join("guest/bpflab-agent");
    if !binary.is_file() {
        bail!("cargo reported success but {} is missing", binary.display());
    }
    Ok(binary)
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
    ui::status(format!(
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
