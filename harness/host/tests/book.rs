//! The book (`book/`) is tested like code:
//!
//! - every page in SUMMARY.md exists, every `{{#include}}` names an existing file and
//!   every internal link resolves;
//! - every `cargo run -- …` command shown parses with the real command line;
//! - every output block (```text) is included from a file a real run produced (a test
//!   snapshot or a captured output), never typed by hand;
//! - the trace line the machinery chapter's figure takes apart is the captured one.
//!
//! `mdbook build book` (in CI) renders it.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clap::Parser;

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book/src")
}

fn pages() -> Vec<(PathBuf, String)> {
    let mut pages: Vec<(PathBuf, String)> = std::fs::read_dir(book_src())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    pages.sort();
    assert!(pages.len() >= 8, "the book has its chapters");
    pages
}

/// Targets of `{{#include path[:lines]}}` in a page.
fn includes(text: &str) -> Vec<String> {
    text.match_indices("{{#include ")
        .map(|(i, _)| {
            let rest = &text[i + "{{#include ".len()..];
            let target = &rest[..rest.find("}}").expect("include is closed")];
            target.split(':').next().unwrap().trim().to_string()
        })
        .collect()
}

#[test]
fn every_page_include_and_link_resolves() {
    let src = book_src();
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    for (page, text) in pages() {
        for target in includes(&text) {
            let path = page.parent().unwrap().join(&target);
            assert!(
                path.is_file(),
                "{}: include {target} does not exist",
                page.display()
            );
        }
        // Markdown links to other pages: ](page.md) or ](page.md#anchor).
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let target = &rest[..rest.find(')').unwrap_or(0)];
            if target.starts_with("http") || target.starts_with('#') || target.is_empty() {
                continue;
            }
            let file = target.split('#').next().unwrap();
            assert!(
                src.join(file).is_file(),
                "{}: link to {target} is broken",
                page.display()
            );
        }
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "{name} is not in SUMMARY.md"
            );
        }
    }
}

#[test]
fn every_command_in_the_book_parses_with_the_real_cli() {
    let mut checked = 0;
    for (page, text) in pages() {
        for line in text.lines() {
            let Some(at) = line.find("cargo run -- ") else {
                continue;
            };
            let command = &line[at + "cargo run -- ".len()..];
            // Up to a comment, or the end of inline code.
            let command = command
                .split('#')
                .next()
                .unwrap()
                .split('`')
                .next()
                .unwrap()
                .trim();
            let mut args = vec!["bpflab"];
            args.extend(command.split_whitespace());
            if let Err(e) = bpflab::cli::Cli::try_parse_from(&args) {
                // `help <command>` is a request for help, which clap reports as an "error".
                if e.kind() == clap::error::ErrorKind::DisplayHelp {
                    checked += 1;
                    continue;
                }
                panic!(
                    "{}: `cargo run -- {command}` does not parse:\n{e}",
                    page.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} commands found");
}

#[test]
fn every_output_block_comes_from_a_real_run() {
    for (page, text) in pages() {
        let mut in_text_block = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_text_block = !in_text_block && trimmed == "```text";
                continue;
            }
            if in_text_block && !trimmed.is_empty() {
                assert!(
                    trimmed.starts_with("{{#include ")
                        && (trimmed.contains("tests/snapshots/") || trimmed.contains("captured/")),
                    "{}: output typed by hand, not included from a real run: {trimmed}",
                    page.display()
                );
            }
        }
    }
}

/// The figure that takes a trace_pipe line apart quotes, field by field, the real line in
/// `captured/trace-line.txt` (which book/capture.sh takes from a real run).
#[test]
fn the_trace_line_figure_quotes_the_captured_line() {
    let src = book_src();
    let line = std::fs::read_to_string(src.join("captured/trace-line.txt")).unwrap();
    let line = line.trim_end();
    let svg = std::fs::read_to_string(src.join("figures/trace-line.svg")).unwrap();
    // The fields of the line itself, the first row of the figure: everything before the
    // flags' breakdown.
    let row = &svg[..svg
        .find("The five flags")
        .expect("the figure explains the flags")];
    let fields: Vec<&str> = row
        .match_indices("<text class=\"field\"")
        .map(|(i, _)| {
            let text = &row[i..];
            let start = text.find('>').unwrap() + 1;
            &text[start..text.find("</text>").unwrap()]
        })
        .collect();
    assert_eq!(
        fields.len(),
        7,
        "task, pid, CPU, flags, time, event, message: {fields:?}"
    );
    let mut rest = line;
    for field in &fields {
        let at = rest
            .find(field)
            .unwrap_or_else(|| panic!("{field:?} is not in the captured line {line:?}"));
        rest = &rest[at + field.len()..];
    }
    assert!(
        rest.trim().is_empty(),
        "the figure stops before the line ends: {rest:?}"
    );
    let flags = fields[3];
    let shown: String = svg[svg.find("The five flags").unwrap()..]
        .match_indices("<text class=\"field\"")
        .map(|(i, _)| {
            let text = &svg[svg.find("The five flags").unwrap() + i..];
            let start = text.find('>').unwrap() + 1;
            text[start..text.find("</text>").unwrap()].to_string()
        })
        .collect();
    assert_eq!(shown, flags, "the flags, one by one, are the line's");
}
