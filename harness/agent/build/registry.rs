//! The agent's lesson registry, generated from the lesson directories.
//!
//! Every directory under `lessons/` is one lesson. The agent compiles each lesson's
//! `src/lib.rs` into itself as a module (`#[path]`), and maps the number in its
//! `lesson.toml` to its `run`: adding a lesson is adding a directory, and a lesson that
//! does not compile, or is not fit to be registered, is a build error of the agent.
//!
//! Modules rather than Cargo dependencies because a build script cannot add
//! dependencies, and a hand-kept list of them is what this replaces. Each lesson still
//! is a crate of its own (a workspace member), so that editors and `cargo check -p`
//! see it alone; the checks here keep the two builds of it in agreement.
//!
//! Shared, through `#[path]`, by the agent's build script, which writes the registry,
//! and the host's tests (`harness/host/tests/registry.rs`), which check it: std and
//! `toml` only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One lesson, as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The number in `lesson.toml`.
    pub number: u32,
    /// `01-hello`.
    pub dir_name: String,
    /// The module the lesson is compiled into: `lesson_01_hello`.
    pub module: String,
    /// The lesson's user side, absolute.
    pub lib_rs: PathBuf,
}

/// Reads every lesson under `lessons_dir` (ordered by number), checking that the agent
/// can compile it in: `agent_deps` are the crates the agent depends on, which are all a
/// lesson compiled into it can use.
pub fn scan(lessons_dir: &Path, agent_deps: &BTreeSet<String>) -> Result<Vec<Entry>, String> {
    let lessons_dir = lessons_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", lessons_dir.display()))?;
    let listing = std::fs::read_dir(&lessons_dir)
        .map_err(|e| format!("listing {}: {e}", lessons_dir.display()))?;
    let mut dirs = Vec::new();
    for item in listing {
        let item = item.map_err(|e| format!("listing {}: {e}", lessons_dir.display()))?;
        let name = item.file_name().to_string_lossy().into_owned();
        // Editors' and tools' hidden directories are not lessons; plain files (a README
        // of the folder) are not either.
        if !name.starts_with('.') && item.path().is_dir() {
            dirs.push(item.path());
        }
    }
    dirs.sort();
    let mut entries: Vec<Entry> = Vec::new();
    for dir in &dirs {
        let entry = read_lesson(dir, &lessons_dir, agent_deps)?;
        if let Some(other) = entries.iter().find(|e| e.number == entry.number) {
            return Err(format!(
                "lessons/{} and lessons/{} both have number {}: give one of them another \
                 number (in its lesson.toml, and its directory name)",
                other.dir_name, entry.dir_name, entry.number
            ));
        }
        entries.push(entry);
    }
    entries.sort_by_key(|e| e.number);
    Ok(entries)
}

/// Checks one lesson directory.
fn read_lesson(
    dir: &Path,
    lessons_dir: &Path,
    agent_deps: &BTreeSet<String>,
) -> Result<Entry, String> {
    let dir_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: a lesson's directory name must be UTF-8", dir.display()))?
        .to_string();
    let shown = format!("lessons/{dir_name}");
    let toml_path = dir.join("lesson.toml");
    if !toml_path.is_file() {
        return Err(format!(
            "{shown} has no lesson.toml: every directory under lessons/ is a lesson \
             (start one with `bpflab new NN name`, or copy lessons/01-hello)"
        ));
    }
    let table = read_table(&toml_path)?;
    let number = match table.get("number").and_then(toml::Value::as_integer) {
        Some(n) if n > 0 && n <= i64::from(u32::MAX) => n as u32,
        _ => {
            return Err(format!(
                "{shown}/lesson.toml: `number` must be a positive integer"
            ))
        }
    };
    let name = table
        .get("name")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| format!("{shown}/lesson.toml: `name` must be a string"))?;
    if !is_lesson_name(name) {
        return Err(format!(
            "{shown}/lesson.toml: the name {name:?} must be lowercase letters, digits and \
             single dashes, starting with a letter"
        ));
    }
    // The directory is what people see; lesson.toml must agree with it (a copied lesson
    // whose lesson.toml was not edited stops here, not at a duplicate number later).
    let expected = format!("{number:02}-{name}");
    if dir_name != expected {
        return Err(format!(
            "{shown}/lesson.toml says number {number} and name {name:?}, so its directory \
             would be lessons/{expected}: make the directory's name and lesson.toml agree"
        ));
    }
    let lib_rs = dir.join("src/lib.rs");
    if !lib_rs.is_file() {
        return Err(format!(
            "{shown} has no src/lib.rs: a lesson's user side is a `pub fn run(lab: &mut Lab) \
             -> anyhow::Result<Outcome>` there"
        ));
    }
    check_dependencies(dir, &shown, lessons_dir, agent_deps)?;
    Ok(Entry {
        number,
        module: format!("lesson_{}", dir_name.replace('-', "_")),
        dir_name,
        lib_rs,
    })
}

/// A lesson compiled into the agent can only use the agent's dependencies: one its own
/// Cargo.toml names that the agent lacks would build as a crate but not in the agent.
fn check_dependencies(
    dir: &Path,
    shown: &str,
    lessons_dir: &Path,
    agent_deps: &BTreeSet<String>,
) -> Result<(), String> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!(
            "{shown} has no Cargo.toml: each lesson is also a crate of the workspace \
             (package name `lesson-{}`)",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    for (name, spec) in dependencies(&manifest)? {
        if agent_deps.contains(&name) {
            continue;
        }
        return Err(format!(
            "{shown} depends on `{name}` (its Cargo.toml), which the guest agent does not: \
             the agent compiles every lesson into itself. Add\n    {}\nunder [dependencies] \
             in harness/agent/Cargo.toml",
            agent_line(&name, &spec, dir, lessons_dir)
        ));
    }
    Ok(())
}

/// The line the agent's Cargo.toml needs for a lesson's dependency `name`.
fn agent_line(name: &str, spec: &toml::Value, dir: &Path, lessons_dir: &Path) -> String {
    let table = spec.as_table();
    if table
        .and_then(|t| t.get("workspace"))
        .and_then(toml::Value::as_bool)
        == Some(true)
    {
        return format!("{name}.workspace = true");
    }
    // A path is relative to the manifest that names it; the agent's is two levels below
    // the workspace root, like the lessons directory.
    if let Some(path) = table
        .and_then(|t| t.get("path"))
        .and_then(toml::Value::as_str)
    {
        let target = normalize(&dir.join(path));
        if let Ok(inside) = target.strip_prefix(lessons_dir) {
            return format!(
                "{name} = {{ path = \"../../lessons/{}\" }}",
                inside.display()
            );
        }
    }
    format!("{name} = {spec}")
}

/// `a/b/../c` → `a/c`, without touching the file system (the path may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The `[dependencies]` of a Cargo manifest: name → what it says.
pub fn dependencies(manifest: &Path) -> Result<BTreeMap<String, toml::Value>, String> {
    let table = read_table(manifest)?;
    Ok(table
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|deps| deps.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Lowercase letters, digits and single dashes, starting with a letter: the name must
/// make a directory, a package and (dashes as underscores) a Rust module name.
pub fn is_lesson_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The registry's source: one module per lesson and `find`, number → entry point. It is
/// `include!`d where `LessonFn` is in scope.
pub fn render(entries: &[Entry]) -> String {
    let mut out = String::from(
        "// Generated by the agent's build script (harness/agent/build/registry.rs) from\n\
         // lessons/*/lesson.toml. Each lesson's user side is compiled in as a module.\n\n",
    );
    for entry in entries {
        // Debug formatting of a str is a valid Rust string literal, escapes included.
        let _ = writeln!(
            out,
            "#[path = {:?}]\nmod {};",
            entry.lib_rs.to_string_lossy(),
            entry.module
        );
    }
    out.push_str(
        "\n/// Lesson number → entry point (`None`: no lesson has that number).\n\
         pub fn find(number: u32) -> Option<LessonFn> {\n    match number {\n",
    );
    for entry in entries {
        let _ = writeln!(
            out,
            "        {} => Some({}::run),",
            entry.number, entry.module
        );
    }
    out.push_str("        _ => None,\n    }\n}\n");
    out
}
