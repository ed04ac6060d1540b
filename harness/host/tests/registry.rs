//! The guest agent's lesson registry, which its build script generates from the lesson
//! directories (`harness/agent/build/registry.rs`, compiled in here too, with its own
//! unit tests): it must register every lesson the host discovers, and a lesson that
//! `bpflab new` makes.

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
