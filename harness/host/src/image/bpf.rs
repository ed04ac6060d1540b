//! Compiling a lesson's kernel side: C → eBPF object with clang, cached by content (Rust
//! → eBPF object with cargo is `bpf_rust`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::arch::Arch;
use crate::config::Config;
use crate::digest::sha256_bytes;
use crate::lessons::Lesson;
use crate::provision;
use crate::tools::Program;

/// clang and the include directories the lessons need beyond its defaults (libbpf's
/// headers, the guest arch's kernel headers), the host's or bpflab's own.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// clang.
    pub clang: Program,
    /// `-I` directories.
    pub includes: Vec<PathBuf>,
    /// bpflab's cache, where it builds bpf-linker for lessons whose kernel side is Rust.
    pub cache_dir: PathBuf,
}

impl Toolchain {
    /// The toolchain for `arch`'s lessons: the host's tools where it has them, else those
    /// bpflab unpacks into its cache.
    pub fn find(config: &Config, arch: Arch) -> anyhow::Result<Toolchain> {
        Ok(Toolchain {
            clang: provision::clang(config)?,
            includes: provision::include_dirs(config, arch)?,
            cache_dir: config.cache_dir.clone(),
        })
    }
}

/// A compiled object and the name the lesson loads it by.
#[derive(Debug, Clone)]
pub struct BpfObject {
    /// File name inside the guest, e.g. `hello.bpf.o`.
    pub name: String,
    /// Where it is on the host.
    pub path: PathBuf,
}

/// clang refused one of a lesson's programs.
#[derive(Debug, thiserror::Error)]
#[error("clang could not compile {}:\n{stderr}", path.display())]
pub struct CompileError {
    /// The program as the lesson names it (`stack.bpf.c`).
    pub program: String,
    /// Where it is on the host.
    pub path: PathBuf,
    /// What clang said.
    pub stderr: String,
}

impl CompileError {
    /// clang's message as a learner reads it: file names relative to the lesson, and a
    /// line clang repeats (it reports an oversized stack once per instruction that
    /// touches it) shown once with its count.
    pub fn message(&self) -> String {
        let dir = self.path.parent().map(|d| format!("{}/", d.display()));
        let text = match &dir {
            Some(dir) => self.stderr.replace(dir.as_str(), ""),
            None => self.stderr.clone(),
        };
        let mut lines: Vec<String> = Vec::new();
        let mut seen: Vec<(String, usize)> = Vec::new();
        for line in text.lines() {
            match seen.iter_mut().find(|(l, _)| l == line) {
                Some((_, count)) if line.contains(": error: ") => *count += 1,
                _ => {
                    seen.push((line.to_string(), 1));
                    lines.push(line.to_string());
                }
            }
        }
        lines
            .into_iter()
            .map(|line| match seen.iter().find(|(l, _)| *l == line) {
                Some((_, n)) if *n > 1 => format!("{line} [{n} times]"),
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Compiles every program of `lesson` for `arch` into `out_root/<arch>/<lesson dir>/`,
/// skipping those whose sources and flags did not change.
pub fn compile_lesson(
    lesson: &Lesson,
    arch: Arch,
    toolchain: &Toolchain,
    out_root: &Path,
) -> anyhow::Result<Vec<BpfObject>> {
    let clang = &toolchain.clang;
    let out_dir = out_root.join(arch.name()).join(lesson.dir_name());
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let flags = clang_flags(arch, &toolchain.includes);
    // A program may live in another lesson's directory (an exercise reusing a lesson's
    // kernel side): hash every directory a program comes from.
    let mut dirs: Vec<PathBuf> = lesson
        .programs
        .iter()
        .filter_map(|p| lesson.dir.join(p).parent().map(Path::to_path_buf))
        .collect();
    dirs.push(lesson.dir.clone());
    dirs.sort();
    dirs.dedup();
    // The compiler is an input too: another clang may make other code.
    let mut identity = flags.clone();
    identity.push(clang.path.display().to_string());
    let inputs_hash = hash_inputs(&dirs, &identity)?;
    let mut objects = Vec::new();
    for source in &lesson.programs {
        let file = Path::new(source)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let name = format!("{}.o", file.trim_end_matches(".c"));
        let out = out_dir.join(&name);
        let stamp = out_dir.join(format!("{name}.inputs"));
        let fresh =
            out.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&inputs_hash);
        if !fresh {
            let src = lesson.dir.join(source);
            // Written under a private name and renamed: two bpflab runs may compile the
            // same lesson at once, and neither may ever load the other's half-written file.
            let partial = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .tempfile_in(&out_dir)
                .with_context(|| format!("creating a temporary file in {}", out_dir.display()))?;
            // Run in the lesson's directory, naming the program as the lesson does, so that
            // clang's messages name the file as the learner sees it.
            let output = clang
                .command()
                .current_dir(&lesson.dir)
                .args(&flags)
                .arg("-c")
                .arg(source)
                .arg("-o")
                .arg(partial.path())
                .output()
                .with_context(|| format!("running {}", clang.path.display()))?;
            if !output.status.success() {
                return Err(CompileError {
                    program: source.clone(),
                    path: src,
                    stderr: String::from_utf8_lossy(&output.stderr)
                        .trim_end()
                        .to_string(),
                }
                .into());
            }
            std::fs::rename(&partial, &out)
                .with_context(|| format!("moving {} into place", out.display()))?;
            std::fs::write(&stamp, &inputs_hash)?;
        }
        objects.push(BpfObject { name, path: out });
    }
    Ok(objects)
}

/// The flags every lesson is compiled with, `includes` as `-I`. `-g` keeps BTF, so the
/// verifier's messages can quote the C line they are about.
pub fn clang_flags(arch: Arch, includes: &[PathBuf]) -> Vec<String> {
    let mut flags: Vec<String> = ["-O2", "-g", "-Wall", "-target", "bpf"]
        .map(String::from)
        .to_vec();
    flags.push(format!("-D{}", arch.bpf_target_define()));
    for dir in includes {
        flags.push(format!("-I{}", dir.display()));
    }
    flags
}

/// Hash of everything that affects the objects: the C sources and headers of the
/// directories the programs come from, and the flags.
fn hash_inputs(dirs: &[PathBuf], flags: &[String]) -> anyhow::Result<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let listing =
            std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
        files.extend(
            listing
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "c" || e == "h")),
        );
    }
    files.sort();
    let mut all = flags.join(" ").into_bytes();
    for file in files {
        all.extend(file.file_name().unwrap_or_default().as_encoded_bytes());
        all.extend(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
    }
    Ok(sha256_bytes(&all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_error_shows_clangs_message_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let Some(clang) = crate::tools::which("clang") else {
            return; // compile_lesson itself says how to install clang; tested in tools
        };
        let toolchain = Toolchain {
            clang: Program::host(clang),
            includes: provision::spec::asm_include_dir(Arch::X86_64)
                .into_iter()
                .collect(),
            cache_dir: dir.path().join("cache"),
        };
        let lesson_dir = dir.path().join("99-broken");
        std::fs::create_dir(&lesson_dir).unwrap();
        std::fs::write(
            lesson_dir.join("broken.bpf.c"),
            "#include <linux/bpf.h>\nint f(void *ctx)\n{\n\treturn undeclared_variable;\n}\n",
        )
        .unwrap();
        let lesson = Lesson {
            number: 99,
            name: "broken".into(),
            title: "broken".into(),
            programs: vec!["broken.bpf.c".into()],
            rust_programs: vec![],
            parts: vec![],
            snapshot: Default::default(),
            snapshot_collapse: false,
            kind: crate::lessons::Kind::Lesson,
            needs: vec![],
            part_needs: Default::default(),
            rejected_for: vec![],
            refused_by: Default::default(),
            guest_tools: vec![],
            kernel_modules: vec![],
            loopback: false,
            dir: lesson_dir,
        };
        let err =
            compile_lesson(&lesson, Arch::X86_64, &toolchain, &dir.path().join("out")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("broken.bpf.c:4:"), "{msg}");
        assert!(msg.contains("undeclared_variable"), "{msg}");
        // Nothing half-written is left where the next run would load it.
        let out = dir.path().join("out/x86_64/99-broken");
        assert!(!out.join("broken.bpf.o").exists());
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    }
}
