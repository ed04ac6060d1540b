//! The toolchain for kernel sides written in Rust: rustc's own eBPF target, the core
//! library's source (rebuilt for that target), and bpf-linker, which links the LLVM
//! bitcode rustc writes for eBPF into one object.
//!
//! bpf-linker reads that bitcode with LLVM, and LLVM reads only bitcode of its own
//! version or older: a bpf-linker built against another LLVM than rustc's fails on the
//! first object. rustup's rustc ships its LLVM as a shared library
//! (`<sysroot>/lib/libLLVM-<major>-rust-<version>.so`), so bpflab builds bpf-linker from
//! crates.io against exactly that library, once per rustc, into its cache. Nothing else
//! is needed: no LLVM from the distribution (Debian 12 has LLVM 16 at most, and
//! bpf-linker 0.13 wants 21, 22 or 23).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::{file_lock, term};

/// The bpf-linker release bpflab builds, and the LLVM majors it can be built for.
pub const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_LLVM: [u32; 3] = [21, 22, 23];

/// What building a Rust kernel side needs, found (and completed) on this host.
#[derive(Debug, Clone)]
pub struct RustBpfToolchain {
    /// cargo, as bpflab itself was started with.
    pub cargo: PathBuf,
    /// bpf-linker, built against rustc's LLVM.
    pub linker: PathBuf,
    /// `rustc -vV`: what the objects depend on besides their sources.
    pub rustc_identity: String,
}

/// rustc's version and LLVM, as `rustc -vV` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustcFacts {
    /// `1.95.0`.
    pub release: String,
    /// `22.1.2`.
    pub llvm: String,
}

impl RustcFacts {
    /// Parses `rustc -vV`'s output.
    pub fn parse(verbose_version: &str) -> Option<RustcFacts> {
        let field = |name: &str| {
            verbose_version
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        Some(RustcFacts {
            release: field("release:")?,
            llvm: field("LLVM version:")?,
        })
    }

    /// The LLVM major version (`22`).
    pub fn llvm_major(&self) -> Option<u32> {
        self.llvm.split('.').next()?.parse().ok()
    }
}

impl RustBpfToolchain {
    /// The toolchain, completed where it can be: rust-src added with rustup, bpf-linker
    /// built into `cache_dir` (about two minutes on two cores, once per rustc).
    pub fn find(cache_dir: &Path) -> anyhow::Result<RustBpfToolchain> {
        let rustc = Rustc::ask()?;
        ensure_rust_src(&rustc.sysroot)?;
        let plan = LinkerPlan::new(cache_dir, &rustc)?;
        let linker = match plan.binary.is_file() {
            true => plan.binary.clone(),
            false => build_once(&plan, &rustc)?,
        };
        Ok(RustBpfToolchain {
            cargo: std::env::var_os("CARGO")
                .unwrap_or_else(|| "cargo".into())
                .into(),
            linker,
            rustc_identity: rustc.identity,
        })
    }
}

/// What `bpflab doctor` says of this toolchain, without building or adding anything.
pub fn report(cache_dir: &Path) -> Result<String, String> {
    let rustc = Rustc::ask().map_err(|e| format!("{e:#}"))?;
    let rust_src = match has_rust_src(&rustc.sysroot) {
        true => "rust-src present",
        false => "rust-src added with rustup on first use",
    };
    let plan = LinkerPlan::new(cache_dir, &rustc).map_err(|e| format!("{e:#}"))?;
    let linker = match plan.binary.is_file() {
        true => format!(
            "bpflab's bpf-linker {BPF_LINKER_VERSION}: {}",
            plan.binary.display()
        ),
        false => format!(
            "bpf-linker {BPF_LINKER_VERSION} built by bpflab on first use, against rustc's LLVM \
             (about two minutes on two cores)"
        ),
    };
    Ok(format!(
        "rustc {}, LLVM {}; {rust_src}; {linker}",
        rustc.facts.release, rustc.facts.llvm
    ))
}

/// The rustc bpflab builds with, as it describes itself.
struct Rustc {
    identity: String,
    facts: RustcFacts,
    sysroot: PathBuf,
}

impl Rustc {
    fn ask() -> anyhow::Result<Rustc> {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let identity = run_text(Command::new(&rustc).arg("-vV"))?;
        let facts = RustcFacts::parse(&identity)
            .with_context(|| format!("reading rustc's version from `rustc -vV`:\n{identity}"))?;
        let sysroot = PathBuf::from(run_text(Command::new(&rustc).args(["--print", "sysroot"]))?);
        Ok(Rustc {
            identity,
            facts,
            sysroot,
        })
    }
}

fn has_rust_src(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib/src/rust/library/core/Cargo.toml")
        .is_file()
}

/// `-Z build-std=core` rebuilds the core library for the eBPF target from its source,
/// which rustup ships as the rust-src component.
fn ensure_rust_src(sysroot: &Path) -> anyhow::Result<()> {
    if has_rust_src(sysroot) {
        return Ok(());
    }
    if crate::tools::which("rustup").is_none() {
        bail!(
            "building a Rust kernel side needs the core library's source (rustup's rust-src \
             component), which {} lacks, and rustup is not available to add it",
            sysroot.display()
        );
    }
    term::status("adding the Rust component rust-src (once) with rustup");
    let status = Command::new("rustup")
        .args(["component", "add", "rust-src"])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("`rustup component add rust-src` failed; run it yourself and try again");
    }
    Ok(())
}

/// Where bpflab's bpf-linker for a rustc is, or will be once built.
struct LinkerPlan {
    major: u32,
    /// rustc's LLVM library's link name.
    library: String,
    parent: PathBuf,
    name: String,
    binary: PathBuf,
}

impl LinkerPlan {
    fn new(cache_dir: &Path, rustc: &Rustc) -> anyhow::Result<LinkerPlan> {
        let facts = &rustc.facts;
        let major = facts.llvm_major().unwrap_or(0);
        if !BPF_LINKER_LLVM.contains(&major) {
            bail!(
                "rustc {} is built on LLVM {}, and bpf-linker {BPF_LINKER_VERSION} can only be \
                 built for LLVM {BPF_LINKER_LLVM:?}: use a Rust whose LLVM is one of these \
                 (`rustup default stable`; 1.95 has LLVM 22)",
                facts.release,
                facts.llvm
            );
        }
        let library = llvm_library(&rustc.sysroot.join("lib"), major)?;
        // One build per rustc: the library's name changes with every Rust release, and the
        // sysroot with every toolchain.
        let key = crate::digest::sha256_bytes(
            format!("{}\n{}", library, rustc.sysroot.display()).as_bytes(),
        );
        let name = format!(
            "{BPF_LINKER_VERSION}-rust-{}-llvm-{}-{}",
            facts.release,
            facts.llvm,
            &key[..12]
        );
        let parent = cache_dir.join("bpf-linker");
        let binary = parent.join(&name).join("bin/bpf-linker");
        Ok(LinkerPlan {
            major,
            library,
            parent,
            name,
            binary,
        })
    }
}

/// Builds the planned bpf-linker, unless another bpflab did while this one waited.
fn build_once(plan: &LinkerPlan, rustc: &Rustc) -> anyhow::Result<PathBuf> {
    let (parent, name) = (&plan.parent, &plan.name);
    let _lock = file_lock::acquire(parent, name, "building bpf-linker")?;
    if plan.binary.is_file() {
        return Ok(plan.binary.clone());
    }
    let scratch = tempfile::Builder::new()
        .prefix(&format!(".{name}-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a scratch directory in {}", parent.display()))?;
    let lib_dir = rustc.sysroot.join("lib");
    build_bpf_linker(
        scratch.path(),
        plan.major,
        &plan.library,
        &lib_dir,
        &rustc.facts,
    )?;
    let scratch = scratch.keep();
    std::fs::rename(&scratch, parent.join(name))
        .with_context(|| format!("moving bpf-linker into {}", parent.display()))?;
    Ok(plan.binary.clone())
}

/// The link name of rustc's LLVM in `lib_dir`: `LLVM-22-rust-1.95.0-stable` for
/// `libLLVM-22-rust-1.95.0-stable.so`.
fn llvm_library(lib_dir: &Path, major: u32) -> anyhow::Result<String> {
    let prefix = format!("libLLVM-{major}");
    let found = std::fs::read_dir(lib_dir)
        .with_context(|| format!("listing {}", lib_dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|f| f.starts_with(&prefix) && f.ends_with(".so"));
    match found {
        Some(file) => Ok(file["lib".len()..file.len() - ".so".len()].to_string()),
        None => bail!(
            "rustc's LLVM library ({prefix}-*.so) is not in {}: bpf-linker is built against \
             it, and only rustup's Rust toolchains ship it",
            lib_dir.display()
        ),
    }
}

/// `cargo install bpf-linker` into `root`, linked to rustc's own LLVM library (the
/// `no-llvm-linking` feature leaves the linking to us) and finding it at run time by an
/// rpath, so that no other LLVM on the host can stand in for it.
fn build_bpf_linker(
    root: &Path,
    major: u32,
    library: &str,
    lib_dir: &Path,
    facts: &RustcFacts,
) -> anyhow::Result<()> {
    let rustflags = format!(
        "-L native={dir} -l dylib={library} -C link-arg=-Wl,-rpath,{dir}",
        dir = lib_dir.display()
    );
    let spinner = term::spinner(format!(
        "building bpf-linker {BPF_LINKER_VERSION} against rustc {}'s LLVM {} (once; about \
         two minutes on two cores)",
        facts.release, facts.llvm
    ));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["install", "--quiet", "--locked", "--no-default-features"])
        .arg("--features")
        .arg(format!("llvm-{major},no-llvm-linking"))
        .arg(format!("bpf-linker@{BPF_LINKER_VERSION}"))
        .arg("--root")
        .arg(root)
        .arg("--target-dir")
        .arg(root.join("build"))
        .env("RUSTFLAGS", rustflags)
        // Flags meant for whatever cargo started bpflab must not reach this build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .context("running cargo install bpf-linker")?;
    spinner.finish_and_clear();
    if !output.status.success() {
        bail!(
            "building bpf-linker {BPF_LINKER_VERSION} failed (it needs crates.io and a C \
             linker):\n{}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    // The build tree is 400 MB of intermediate files; only the binary is kept.
    let _ = std::fs::remove_dir_all(root.join("build"));
    term::status(format!(
        "built bpf-linker {BPF_LINKER_VERSION} for rustc {}",
        facts.release
    ));
    Ok(())
}

fn run_text(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rustc_in(sysroot: &Path, release: &str, llvm: &str) -> Rustc {
        Rustc {
            identity: String::new(),
            facts: RustcFacts {
                release: release.into(),
                llvm: llvm.into(),
            },
            sysroot: sysroot.to_path_buf(),
        }
    }

    #[test]
    fn rustc_facts_come_from_its_verbose_version() {
        let text = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: \
                    x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        let facts = RustcFacts::parse(text).unwrap();
        assert_eq!(facts.release, "1.95.0");
        assert_eq!(facts.llvm_major(), Some(22));
        assert_eq!(RustcFacts::parse("rustc 1.95.0\n"), None);
    }

    #[test]
    fn a_rustc_bpf_linker_cannot_be_built_for_is_refused_with_what_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let rustc = rustc_in(dir.path(), "1.80.0", "18.1.7");
        let err = LinkerPlan::new(dir.path(), &rustc)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("LLVM 18.1.7"), "{err}");
        assert!(err.contains("[21, 22, 23]"), "{err}");
        // Nothing was built or left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_rustc_without_its_llvm_library_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        let rustc = rustc_in(dir.path(), "1.95.0", "22.1.2");
        let err = LinkerPlan::new(&dir.path().join("cache"), &rustc)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("libLLVM-22-*.so"), "{err}");
        assert!(err.contains("rustup"), "{err}");
    }

    #[test]
    fn the_llvm_library_is_named_by_its_link_name() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "libLLVM.so.22.1-rust-1.95.0-stable",
            "libLLVM-22-rust-1.95.0-stable.so",
        ] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        assert_eq!(
            llvm_library(dir.path(), 22).unwrap(),
            "LLVM-22-rust-1.95.0-stable"
        );
        let err = llvm_library(dir.path(), 21).unwrap_err().to_string();
        assert!(err.contains("libLLVM-21-*.so"), "{err}");
    }
}
