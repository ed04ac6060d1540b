//! Building a lesson's kernel side written in Rust (aya-ebpf): each crate named in
//! `rust_programs` becomes `<crate dir>.bpf.o`, cached by content like the C objects.
//!
//! The build is `cargo build --release --target bpfel-unknown-none -Z build-std=core`
//! with bpf-linker as the linker. `-Z` flags belong to nightly Rust; `RUSTC_BOOTSTRAP=1`
//! lets the stable rustc that builds bpflab accept them, so that nothing beyond rustup's
//! own components is needed (and the object comes from the same LLVM as bpf-linker's).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::bpf::{BpfObject, Toolchain};
use super::bpf_linker::RustBpfToolchain;
use crate::arch::Arch;
use crate::digest::sha256_bytes;
use crate::lessons::Lesson;
use crate::{file_lock, term};

/// The Rust target for eBPF objects (little-endian, as both guest arches are).
pub const BPF_TARGET: &str = "bpfel-unknown-none";

/// Builds the Rust programs of `lesson` for `arch` into `out_root/<arch>/<lesson dir>/`
/// beside its C objects, skipping those whose crate, rustc and bpf-linker did not
/// change. cargo's build directory is `out_root/rust-target`, one for all lessons and
/// arches: the core library is built once, and another arch rebuilds only aya-ebpf
/// (seconds). Each crate has a target directory of its own per arch, beside its object,
/// where cargo puts the binary: crates of the same name (an exercise's and its
/// solution's) would otherwise share one path, and cargo does not rewrite the file for a
/// crate it finds up to date.
pub fn compile_lesson(
    lesson: &Lesson,
    arch: Arch,
    toolchain: &Toolchain,
    out_root: &Path,
) -> anyhow::Result<Vec<BpfObject>> {
    if lesson.rust_programs.is_empty() {
        return Ok(Vec::new());
    }
    let out_dir = out_root.join(arch.name()).join(lesson.dir_name());
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let toolchain = RustBpfToolchain::find(&toolchain.cache_dir)
        .with_context(|| format!("lesson {}'s kernel side is Rust", lesson.number))?;
    let mut objects = Vec::new();
    for program in &lesson.rust_programs {
        let crate_dir = lesson.dir.join(program);
        let file = Path::new(program).file_name().unwrap_or_default();
        let name = format!("{}.bpf.o", file.to_string_lossy());
        let out = out_dir.join(&name);
        let stamp = out_dir.join(format!("{name}.inputs"));
        check_package_name(
            &crate_dir,
            &format!("lesson-{}-{}", lesson.number, file.display()),
        )?;
        let inputs_hash = hash_crate(&crate_dir, arch, &toolchain)?;
        let fresh =
            out.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&inputs_hash);
        if !fresh {
            build_program(&toolchain, &crate_dir, program, arch, out_root, &out)?;
            std::fs::write(&stamp, &inputs_hash)
                .with_context(|| format!("writing {}", stamp.display()))?;
        }
        objects.push(BpfObject { name, path: out });
    }
    Ok(objects)
}

/// cargo refused to build one of a lesson's Rust programs.
#[derive(Debug, thiserror::Error)]
#[error("cargo could not build {program} for {BPF_TARGET}:\n{stderr}")]
pub struct RustBuildError {
    /// The program as the lesson names it (`counter-rs`).
    pub program: String,
    /// What cargo and rustc said.
    pub stderr: String,
}

/// Builds one crate and copies its object to `out`. The build directory is shared, so it
/// is locked from the build to the copy: the binary cargo names is a hard link to a file
/// there, which another build may rewrite.
fn build_program(
    toolchain: &RustBpfToolchain,
    crate_dir: &Path,
    program: &str,
    arch: Arch,
    out_root: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let _lock = file_lock::acquire(out_root, "rust-target", "building a Rust kernel side")?;
    let build_dir = out_root.join("rust-target");
    let target_dir = out.with_extension("cargo");
    let spinner = term::spinner(format!(
        "building {program} (Rust) for {BPF_TARGET}, {arch}"
    ));
    let output = Command::new(&toolchain.cargo)
        .current_dir(crate_dir)
        .args([
            "build",
            "--quiet",
            "--release",
            "--locked",
            "--target",
            BPF_TARGET,
        ])
        .args([
            "-Z",
            "build-std=core",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_BUILD_BUILD_DIR", &build_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER", &toolchain.linker)
        // aya-ebpf reads the probed kernel's registers (pt_regs) by this arch.
        .env("AYA_BPF_TARGET_ARCH", aya_arch(arch))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .with_context(|| format!("running {} build", toolchain.cargo.display()))?;
    spinner.finish_and_clear();
    if !output.status.success() {
        return Err(RustBuildError {
            program: program.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_string(),
        }
        .into());
    }
    let built = executable(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("cargo built no binary from {program}"))?;
    // Copied under a private name and renamed: a run loading this lesson at the same time
    // must never see half an object.
    let partial = out.with_extension("o.partial");
    std::fs::copy(&built, &partial).with_context(|| format!("copying {}", built.display()))?;
    std::fs::rename(&partial, out).with_context(|| format!("moving {} into place", out.display()))
}

/// A Rust kernel side's package must be named `expected` (`lesson-44-counter-rs`).
/// cargo names what it builds in the shared build directory by package name and version
/// (a crate that is a workspace of its own has no other path to tell it apart), so two
/// crates of one name, such as an exercise's and its solution's, would build to the same
/// file, and one lesson would load the other's object.
fn check_package_name(crate_dir: &Path, expected: &str) -> anyhow::Result<()> {
    let manifest = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let parsed: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let name = parsed
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str());
    if name != Some(expected) {
        bail!(
            "{} names its package {}; a Rust kernel side's package is named after its lesson              and directory, `{expected}`, so that no two lessons' crates share a name in              cargo's build directory",
            manifest.display(),
            name.map_or("nothing".to_string(), |n| format!("`{n}`"))
        );
    }
    Ok(())
}

/// The binary cargo's JSON messages name (the crate's one `[[bin]]`).
fn executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// aya's name for the guest's arch.
fn aya_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "aarch64",
    }
}

/// Hash of everything the object depends on: the crate's files (its lock file included),
/// the arch, rustc and bpf-linker.
fn hash_crate(dir: &Path, arch: Arch, toolchain: &RustBpfToolchain) -> anyhow::Result<String> {
    if !dir.join("Cargo.toml").is_file() {
        bail!("{} has no Cargo.toml", dir.display());
    }
    let mut all = format!(
        "{}\n{}\n{}\n",
        arch.name(),
        toolchain.rustc_identity,
        toolchain.linker.display()
    )
    .into_bytes();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if entry.file_type().is_file() {
            let path = entry.path();
            all.extend(
                path.strip_prefix(dir)
                    .unwrap_or(path)
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            all.extend(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
        }
    }
    Ok(sha256_bytes(&all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_the_artifact_cargo_names() {
        let messages = r#"{"reason":"build-script-executed","package_id":"x"}
{"reason":"compiler-artifact","executable":null,"target":{"name":"aya_ebpf"}}
{"reason":"compiler-artifact","executable":"/t/bpfel-unknown-none/release/counter-rs"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable(messages),
            Some(PathBuf::from("/t/bpfel-unknown-none/release/counter-rs"))
        );
        assert_eq!(executable(""), None);
    }

    #[test]
    fn a_kernel_crate_is_named_after_its_lesson_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        std::fs::write(&manifest, "[package]\nname = \"lesson-44-counter-rs\"\n").unwrap();
        check_package_name(dir.path(), "lesson-44-counter-rs").unwrap();
        std::fs::write(&manifest, "[package]\nname = \"bytes-rs\"\n").unwrap();
        let err = check_package_name(dir.path(), "lesson-441-bytes-rs")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`bytes-rs`") && err.contains("`lesson-441-bytes-rs`"),
            "{err}"
        );
    }
}
