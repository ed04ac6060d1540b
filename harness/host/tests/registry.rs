//! The guest agent's lesson registry, which its build script generates from the lesson
//! directories (`harness/agent/build/registry.rs`, compiled in here too): what it accepts
//! and refuses, on lesson trees made for the test; and on the real one, that it registers
//! every lesson the host discovers, and a lesson that `bpflab new` makes.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bpflab::lessons;
use bpflab::scaffold;

#[path = "../../agent/build/registry.rs"]
mod registry;

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The crates the agent depends on, which are all a lesson compiled into it can use.
fn agent_deps() -> BTreeSet<String> {
    registry::dependencies(&source_root().join("harness/agent/Cargo.toml"))
        .unwrap()
        .into_keys()
        .collect()
}

#[test]
fn every_lesson_directory_is_registered() {
    let root = source_root().join("lessons");
    let entries = registry::scan(&root, &agent_deps()).unwrap();
    let discovered = lessons::discover(&root).unwrap();
    let registered: Vec<(u32, &str)> = entries
        .iter()
        .map(|e| (e.number, e.dir_name.as_str()))
        .collect();
    let names: Vec<String> = discovered.iter().map(|l| l.dir_name()).collect();
    let expected: Vec<(u32, &str)> = discovered
        .iter()
        .zip(&names)
        .map(|(l, name)| (l.number, name.as_str()))
        .collect();
    assert_eq!(registered, expected);
    let code = registry::render(&entries);
    for entry in &entries {
        let arm = format!("{} => Some({}::run),", entry.number, entry.module);
        assert!(code.contains(&arm), "{arm} missing from:\n{code}");
    }
}

#[test]
fn a_scaffolded_lesson_is_registered() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("lessons")).unwrap();
    scaffold::new_lesson(root.path(), 43, "scaffold-test").unwrap();
    let entries = registry::scan(&root.path().join("lessons"), &agent_deps()).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].number, 43);
    assert_eq!(entries[0].module, "lesson_43_scaffold_test");
}

#[test]
fn the_host_and_the_agent_agree_on_lesson_names() {
    for name in [
        "hello",
        "hello-comm",
        "tcp4",
        "a",
        "Hello",
        "my_probe",
        "-x",
        "x-",
        "a--b",
        "4tcp",
        "",
        "../x",
        "é",
    ] {
        assert_eq!(
            scaffold::is_lesson_name(name),
            registry::is_lesson_name(name),
            "{name:?}"
        );
    }
}

fn deps(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A lesson directory as `bpflab new` or a copy of lesson 1 makes it.
fn lesson(root: &Path, dir: &str, toml: &str, cargo_deps: &str) {
    let dir = root.join(dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("lesson.toml"), toml).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"x\"\n\n[dependencies]\n{cargo_deps}"),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
}

fn scan_err(root: &Path) -> String {
    registry::scan(root, &deps(&["anyhow", "aya"])).unwrap_err()
}

#[test]
fn every_directory_is_a_lesson_in_number_order() {
    let root = tempfile::tempdir().unwrap();
    lesson(
        root.path(),
        "42-hi",
        "number = 42\nname = \"hi\"\n",
        "aya.workspace = true\n",
    );
    lesson(
        root.path(),
        "07-two-words",
        "number = 7\nname = \"two-words\"\n",
        "",
    );
    std::fs::write(root.path().join("README.md"), "not a lesson").unwrap();
    std::fs::create_dir(root.path().join(".vscode")).unwrap();
    let entries = registry::scan(root.path(), &deps(&["aya"])).unwrap();
    let numbers: Vec<(u32, &str)> = entries
        .iter()
        .map(|e| (e.number, e.module.as_str()))
        .collect();
    assert_eq!(numbers, [(7, "lesson_07_two_words"), (42, "lesson_42_hi")]);
    assert!(entries[1].lib_rs.ends_with("42-hi/src/lib.rs"));
    assert!(entries[1].lib_rs.is_absolute());

    let code = registry::render(&entries);
    assert!(code.contains("mod lesson_42_hi;"), "{code}");
    assert!(code.contains("42 => Some(lesson_42_hi::run),"), "{code}");
    assert!(
        code.contains("7 => Some(lesson_07_two_words::run),"),
        "{code}"
    );
    assert!(code.contains("_ => None,"), "{code}");
}

#[test]
fn a_copy_whose_lesson_toml_was_not_edited_is_refused() {
    let root = tempfile::tempdir().unwrap();
    lesson(
        root.path(),
        "01-hello",
        "number = 1\nname = \"hello\"\n",
        "",
    );
    lesson(root.path(), "42-hi", "number = 1\nname = \"hello\"\n", "");
    let err = scan_err(root.path());
    assert!(
        err.contains("lessons/42-hi/lesson.toml says number 1 and name \"hello\""),
        "{err}"
    );
}

#[test]
fn two_lessons_cannot_share_a_number() {
    let root = tempfile::tempdir().unwrap();
    lesson(root.path(), "01-a", "number = 1\nname = \"a\"\n", "");
    lesson(root.path(), "01-b", "number = 1\nname = \"b\"\n", "");
    let err = scan_err(root.path());
    assert!(
        err.contains("lessons/01-a and lessons/01-b both have number 1"),
        "{err}"
    );
}

#[test]
fn what_a_lesson_directory_needs_is_named() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("42-hi")).unwrap();
    assert!(scan_err(root.path()).contains("lessons/42-hi has no lesson.toml"));

    lesson(root.path(), "42-hi", "number = \"42\"\nname = \"hi\"\n", "");
    assert!(scan_err(root.path()).contains("`number` must be a positive integer"));

    lesson(root.path(), "42-hi", "number = 42\nname = \"Hi\"\n", "");
    assert!(scan_err(root.path()).contains("must be lowercase letters"));

    lesson(root.path(), "42-hi", "number = 42\nname = \"hi\"\n", "");
    std::fs::remove_file(root.path().join("42-hi/src/lib.rs")).unwrap();
    assert!(scan_err(root.path()).contains("lessons/42-hi has no src/lib.rs"));

    lesson(root.path(), "42-hi", "number = 42\nname = \"hi\"\n", "");
    std::fs::remove_file(root.path().join("42-hi/Cargo.toml")).unwrap();
    assert!(scan_err(root.path()).contains("lessons/42-hi has no Cargo.toml"));

    lesson(root.path(), "42-hi", "number = 42\nname = \"hi\n", "");
    assert!(scan_err(root.path()).contains("42-hi/lesson.toml"));
}

#[test]
fn a_dependency_the_agent_lacks_names_the_line_to_add() {
    let root = tempfile::tempdir().unwrap();
    lesson(
        root.path(),
        "42-hi",
        "number = 42\nname = \"hi\"\n",
        "libc.workspace = true\n",
    );
    let err = scan_err(root.path());
    assert!(err.contains("lessons/42-hi depends on `libc`"), "{err}");
    assert!(err.contains("\n    libc.workspace = true\n"), "{err}");

    // Another lesson's crate, by path: the agent's path to it.
    lesson(
        root.path(),
        "42-hi",
        "number = 42\nname = \"hi\"\n",
        "lesson-03-x = { path = \"../03-x\" }\n",
    );
    let err = scan_err(root.path());
    assert!(
        err.contains("lesson-03-x = { path = \"../../lessons/03-x\" }"),
        "{err}"
    );

    lesson(
        root.path(),
        "42-hi",
        "number = 42\nname = \"hi\"\n",
        "rand = \"0.9\"\n",
    );
    assert!(scan_err(root.path()).contains("rand = \"0.9\""));
}

#[test]
fn names_make_directories_packages_and_modules() {
    for good in [
        "hello",
        "hello-comm",
        "two-seconds",
        "tcp4",
        "scaffold-test",
    ] {
        assert!(registry::is_lesson_name(good), "{good}");
    }
    for bad in [
        "", "Hello", "4tcp", "-a", "a-", "a--b", "a_b", "a b", "é", "../x",
    ] {
        assert!(!registry::is_lesson_name(bad), "{bad}");
    }
}
