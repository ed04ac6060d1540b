//! `bpflab new`: a new lesson directory in lesson 1's shape, complete and passing on its
//! first run — a kprobe on clone(2) that says "Hello World!!" — for the learner to make
//! their own. Nothing else needs editing: the host discovers the directory, the guest
//! agent's build compiles it in, the workspace takes it as a member.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::lessons;

/// Creates `lessons/NN-name/` under the source tree `root` and returns its path.
pub fn new_lesson(root: &Path, number: u32, name: &str) -> anyhow::Result<PathBuf> {
    if !is_lesson_name(name) {
        bail!(
            "`{name}` cannot name a lesson: use lowercase letters, digits and single dashes, \
             starting with a letter (e.g. `my-probe`); it names the directory, the crate and \
             a Rust module"
        );
    }
    if number == 0 {
        bail!("lesson numbers start at 1");
    }
    let lessons_dir = root.join("lessons");
    if !lessons_dir.is_dir() {
        bail!(
            "{} has no lessons/ directory: run bpflab from its source tree",
            root.display()
        );
    }
    let existing = lessons::discover(&lessons_dir)?;
    if let Some(taken) = existing.iter().find(|l| l.number == number) {
        let numbers: Vec<String> = existing.iter().map(|l| l.number.to_string()).collect();
        bail!(
            "lesson {number} exists already (lessons/{}); pick another number (taken: {})",
            taken.dir_name(),
            numbers.join(", ")
        );
    }
    let dir_name = format!("{number:02}-{name}");
    let dir = lessons_dir.join(&dir_name);
    // create_dir, not create_dir_all: it fails on an existing directory, whoever made it.
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "lessons/{dir_name} exists already (without a lesson.toml); remove it or pick \
             another name"
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    // A half-written lesson would break every build (the workspace and the agent take
    // each directory under lessons/ as a lesson): all of it, or nothing.
    if let Err(e) = write_files(&dir, number, name) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// Lowercase letters, digits and single dashes, starting with a letter: the rule the
/// agent's build applies to lesson names (`harness/agent/build/registry.rs`).
pub fn is_lesson_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn write_files(dir: &Path, number: u32, name: &str) -> anyhow::Result<()> {
    std::fs::create_dir(dir.join("src"))
        .with_context(|| format!("creating {}/src", dir.display()))?;
    let fill = |template: &str| {
        template
            .replace("{number}", &number.to_string())
            .replace("{dir}", &format!("{number:02}-{name}"))
            .replace("{name}", name)
            .replace("{title}", TITLE)
    };
    for (file, template) in [
        ("lesson.toml", LESSON_TOML),
        ("Cargo.toml", CARGO_TOML),
        ("README.md", README),
        ("hello.bpf.c", KERNEL_SIDE),
        ("src/lib.rs", USER_SIDE),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, fill(template))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

const TITLE: &str = "Hello World!! from a kprobe on clone, to make your own";

const LESSON_TOML: &str = r#"# What bpflab needs to know about this lesson. The code is in hello.bpf.c (kernel side)
# and src/lib.rs (user side); the directory's name is its number and name.
number = {number}
name = "{name}"
title = "{title}"
# lesson, exercise (fails until solved; listed apart), solution (of an exercise), mistake
# (fails on purpose; listed apart) or fixture.
kind = "lesson"
# C sources compiled with clang -target bpf; each becomes <name>.o next to the agent.
programs = ["hello.bpf.c"]
# The probed symbol is __x64_sys_clone or __arm64_sys_clone: one snapshot per arch.
snapshot = "arch"
# Should src/lib.rs talk over 127.0.0.1, say so: the guest brings its loopback up first.
# loopback = true
"#;

const CARGO_TOML: &str = r#"[package]
name = "lesson-{dir}"
description = "bpflab lesson {number}: {name}."
version.workspace = true
edition.workspace = true
license.workspace = true
publish = false

# The guest agent compiles this lesson in and has these crates; a crate it lacks must be
# added to harness/agent/Cargo.toml too (its build says so).
[dependencies]
anyhow.workspace = true
aya.workspace = true
bpflab-guest.workspace = true

[lints]
workspace = true
"#;

const README: &str = r#"# Lesson {number} — {title}

Run it:

    cargo run -- lesson {number}

As it comes, this is lesson 1 again: a kprobe on the kernel function behind clone(2)
writes "Hello World!!" to the trace buffer for every process created. Make it yours:

- `hello.bpf.c` — the kernel side, in C, compiled by clang to eBPF bytecode;
- `src/lib.rs` — the user side, in Rust with aya: load, attach, run a workload, read the
  trace and decide whether the lesson passed;
- `lesson.toml` — its number, name and title, what kind of lesson it is, which C files
  to compile and what its output depends on (its snapshots);
- this README — what the lesson teaches.

`cargo test` runs it too and compares its output with a snapshot: record the first one,
and later intended changes, with `cargo insta review`.
"#;

const KERNEL_SIDE: &str = r#"// SPDX-License-Identifier: GPL-2.0
//
// Lesson {number}, kernel side: say "Hello World!!" every time a process calls clone(2).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// "kprobe": the user side attaches it to a kernel function, chosen at run time.
SEC("kprobe")
int hello(void *ctx)
{
	// On the stack: kernels before 5.2 cannot read constants from read-only data.
	char msg[] = "Hello World!!\n";

	// One line in the kernel's trace buffer (/sys/kernel/tracing/trace_pipe).
	bpf_trace_printk(msg, sizeof(msg));
	return 0;
}

// bpf_trace_printk is only offered to programs with a GPL-compatible licence.
char LICENSE[] SEC("license") = "GPL";
"#;

const USER_SIDE: &str = r#"//! Lesson {number}, user side: load `hello.bpf.o`, attach it to the kernel function
//! behind clone(2), create a few processes and watch one "Hello World!!" for each.

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::KProbe;
use bpflab_guest::{workload, Lab, Outcome};

/// How many processes the workload creates. Each must produce exactly one greeting.
const PROCESSES: usize = 3;

/// Runs the lesson inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    // The object clang built from hello.bpf.c.
    let mut bpf = lab.load("hello.bpf.o")?;

    // The function behind clone(2) is named differently by kernel and arch: ask this one.
    let target = lab.syscall_fnname("clone")?;

    // Hand the bytecode to the kernel (the verifier runs here), then attach it.
    let program: &mut KProbe = bpf
        .program_mut("hello")
        .context("hello.bpf.o has no function `hello`")?
        .try_into()?;
    program.load()?;
    program.attach(&target, 0)?;
    lab.note(format!("kprobe attached to {target}"));

    workload::clone_children(PROCESSES)?;

    // The trace is already streaming to the terminal; count this program's lines.
    let greetings = lab.wait_for_trace("Hello World!!", PROCESSES, Duration::from_secs(10));

    // With `--shell`, the program stays attached while you type commands.
    lab.keep_attached(bpf);
    Ok(if greetings.len() == PROCESSES {
        Outcome::Passed(format!(
            "{PROCESSES} processes created, {PROCESSES} greetings"
        ))
    } else {
        Outcome::Failed(format!(
            "{PROCESSES} processes created but {} greetings seen",
            greetings.len()
        ))
    })
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A source tree with lesson 1 in it, as far as discovery is concerned.
    fn tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let hello = root.path().join("lessons/01-hello");
        std::fs::create_dir_all(&hello).unwrap();
        std::fs::write(
            hello.join("lesson.toml"),
            "number = 1\nname = \"hello\"\ntitle = \"t\"\nkind = \"lesson\"\nprograms = []\n",
        )
        .unwrap();
        root
    }

    #[test]
    fn makes_a_lesson_the_host_discovers() {
        let root = tree();
        let dir = new_lesson(root.path(), 43, "scaffold-test").unwrap();
        assert_eq!(dir, root.path().join("lessons/43-scaffold-test"));
        let found = lessons::discover(&root.path().join("lessons")).unwrap();
        let lesson = lessons::find(&found, 43).unwrap();
        assert_eq!(lesson.name, "scaffold-test");
        assert_eq!(lesson.dir_name(), "43-scaffold-test");
        assert_eq!(lesson.kind, lessons::Kind::Lesson);
        assert_eq!(lesson.title, TITLE);
        assert!(dir.join(&lesson.programs[0]).is_file());
        assert_eq!(
            lesson.snapshot_name("6.1", "x86_64").as_deref(),
            Some("lesson43-x86_64")
        );
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            cargo.contains("name = \"lesson-43-scaffold-test\""),
            "{cargo}"
        );
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub fn run(lab: &mut Lab)"), "{lib}");
        // Rust's own `{...}` in the templates survive the filling in.
        assert!(lib.contains("{PROCESSES} processes created"), "{lib}");
        for file in ["README.md", "hello.bpf.c", "src/lib.rs"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(text.contains("esson 43"), "{file}: {text}");
        }
    }

    #[test]
    fn a_taken_number_names_its_lesson() {
        let root = tree();
        let err = new_lesson(root.path(), 1, "again").unwrap_err().to_string();
        assert!(
            err.contains("lesson 1 exists already (lessons/01-hello)"),
            "{err}"
        );
        assert!(!root.path().join("lessons/01-again").exists());
    }

    #[test]
    fn a_bad_name_is_refused_before_anything_is_written() {
        let root = tree();
        for bad in ["Hello", "my_probe", "-x", "x-", "a--b", "4tcp", "", "../x"] {
            let err = new_lesson(root.path(), 43, bad).unwrap_err().to_string();
            assert!(err.contains("cannot name a lesson"), "{bad}: {err}");
        }
        assert_eq!(
            std::fs::read_dir(root.path().join("lessons"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn an_existing_directory_is_left_alone() {
        let root = tree();
        let dir = root.path().join("lessons/43-mine");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
        let err = new_lesson(root.path(), 43, "mine").unwrap_err().to_string();
        assert!(err.contains("lessons/43-mine exists already"), "{err}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn number_zero_and_a_tree_without_lessons_are_refused() {
        let root = tree();
        let err = new_lesson(root.path(), 0, "zero").unwrap_err().to_string();
        assert!(err.contains("start at 1"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = new_lesson(empty.path(), 43, "x").unwrap_err().to_string();
        assert!(err.contains("has no lessons/ directory"), "{err}");
    }
}
