//! The shape of the host crate, checked: modules import each other without cycles (a
//! module never imports one that imports it back, directly or through others), no source
//! file is over 400 lines and no function over 100 (tests aside). A failure names the
//! cycle, the file or the function.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 100;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file of the crate with its module path (`kernel::pins`; `` for lib.rs).
fn modules() -> BTreeMap<String, (PathBuf, String)> {
    let root = src();
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts
            .last()
            .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
        {
            parts.pop();
        }
        let text = std::fs::read_to_string(path).unwrap();
        out.insert(parts.join("::"), (path.to_path_buf(), text));
    }
    out
}

/// The code of a file without its unit tests and comments (a doc comment naming a
/// module is no import).
fn without_tests(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    code.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate modules `module`'s code names (`crate::x::y`, `super::z`), each resolved to
/// the longest module path that exists.
fn imports(
    module: &str,
    text: &str,
    all: &BTreeMap<String, (PathBuf, String)>,
) -> BTreeSet<String> {
    let path_re = regex_lite::Regex::new(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)").unwrap();
    // `use crate::{a, b::c}` groups.
    let group_re = regex_lite::Regex::new(r"\bcrate::\{([^}]*)\}").unwrap();
    let mut named = Vec::new();
    for cap in path_re.captures_iter(text) {
        let tail: Vec<&str> = cap[2].trim_start_matches("::").split("::").collect();
        let mut base: Vec<&str> = if &cap[1] == "crate" {
            Vec::new()
        } else {
            let mut parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
            parent.pop();
            parent
        };
        base.extend(tail);
        named.push(base.join("::"));
    }
    for cap in group_re.captures_iter(text) {
        for item in cap[1].split(',') {
            let item = item.split_whitespace().next().unwrap_or("");
            if !item.is_empty() && item != "self" {
                named.push(item.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    for name in named {
        let mut parts: Vec<&str> = name.split("::").collect();
        while !parts.is_empty() {
            let candidate = parts.join("::");
            if all.contains_key(&candidate) {
                // A module naming its own descendants or ancestors is structure, not an import.
                let related = candidate.starts_with(&format!("{module}::"))
                    || module.starts_with(&format!("{candidate}::"))
                    || candidate == module;
                if !related {
                    out.insert(candidate);
                }
                break;
            }
            parts.pop();
        }
    }
    out
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.out
}

#[test]
fn modules_import_each_other_without_cycles() {
    let all = modules();
    let graph: BTreeMap<String, BTreeSet<String>> = all
        .iter()
        .map(|(m, (_, text))| (m.clone(), imports(m, &without_tests(text), &all)))
        .collect();
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|m| {
                    graph[m]
                        .iter()
                        .filter(|n| c.contains(n))
                        .map(move |n| format!("{m} → {n}"))
                })
                .collect();
            format!("{} modules: {}", c.len(), edges.join(", "))
        })
        .collect();
    assert!(
        described.is_empty(),
        "import cycles:\n{}",
        described.join("\n")
    );
}

#[test]
fn no_source_file_is_over_400_lines() {
    let long: Vec<String> = modules()
        .values()
        .filter(|(_, text)| text.lines().count() > MAX_FILE_LINES)
        .map(|(path, text)| format!("{} ({} lines)", path.display(), text.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_FILE_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn no_function_is_over_100_lines_outside_tests() {
    let fn_re =
        regex_lite::Regex::new(r"^(\s*)(pub(\([a-z]+\))? )?(const )?(unsafe )?fn ([a-z_0-9]+)")
            .unwrap();
    let mut long = Vec::new();
    for (path, text) in modules().values() {
        let code = without_tests(text);
        let lines: Vec<&str> = code.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let Some(cap) = fn_re.captures(line) else {
                continue;
            };
            let indent = &cap[1];
            let close = format!("{indent}}}");
            // A declaration without a body (trait method, extern) ends on its own line.
            if line.trim_end().ends_with(';') {
                continue;
            }
            let end = lines[start..]
                .iter()
                .position(|l| *l == close)
                .map(|n| start + n)
                .unwrap_or(start);
            let length = end - start + 1;
            if length > MAX_FN_LINES {
                long.push(format!(
                    "{}:{} fn {} ({length} lines)",
                    path.display(),
                    start + 1,
                    &cap[6]
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}
