//! The book as a reader sees it. `mdbook build` renders it (into a scratch directory),
//! headless Chromium loads every chapter listed in SUMMARY.md, and the DOM each chapter
//! ends up with is checked:
//!
//! - each code fence of the chapter's Markdown, `{{#include}}`s expanded, became exactly
//!   one code block (`<pre><code>`): an include whose lines land where Markdown does not
//!   expect them (at column 0 inside a list item, say) closes the list and leaves a stray
//!   fence that turns the rest of the page into one block;
//! - no literal ```` ``` ```` and no unexpanded `{{#` is left in the rendered text;
//! - every image loaded (as the browser itself reports it, once the page has loaded);
//! - no chapter is a stub: each has a title and some text.
//!
//! One browser does it all: a scratch page holds every chapter in a frame, and once they
//! have all loaded (images included), its script measures each chapter's DOM and writes
//! the results into the page, which `--dump-dom` prints.
//!
//! It needs `mdbook` (0.5.4, as `.ci/run` installs it) and Chromium (Debian's `chromium`)
//! and fails, saying what to install, when either is missing.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Loading every chapter takes a second or two; this long means the browser hung.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);
/// Fewer characters of text than this in a chapter's main part is a stub.
const MIN_CHAPTER_TEXT: usize = 400;
/// The scratch page's script: once every frame has loaded, one JSON object per chapter
/// (`<`, `>` and `&` escaped, so that the dumped DOM carries the JSON verbatim).
const MEASURE: &str = r#"<script>
addEventListener('load', () => {
  const results = [...document.querySelectorAll('iframe')].map(frame => {
    const doc = frame.contentDocument;
    const main = doc && doc.querySelector('main');
    if (!main) return { chapter: frame.dataset.chapter, main: false };
    return {
      chapter: frame.dataset.chapter,
      main: true,
      pre: main.querySelectorAll('pre').length,
      pre_code: main.querySelectorAll('pre > code').length,
      title: main.querySelector('h1') !== null,
      text: main.textContent,
      broken_images: [...new Set([...doc.images]
        .filter(img => !img.complete || img.naturalWidth === 0)
        .map(img => img.getAttribute('src')))],
    };
  });
  const out = document.createElement('pre');
  out.id = 'results';
  out.textContent = JSON.stringify(results)
    .replace(/[<>&]/g, c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  document.body.appendChild(out);
});
</script>"#;

fn book() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book")
}

/// Runs a tool, or fails the test naming how to install it.
fn tool(program: &str, install: &str) -> Command {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => Command::new(program),
        Ok(out) => panic!(
            "`{program} --version` failed ({}): {}\nThe book's rendering test needs it: {install}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            panic!("`{program}` cannot be run ({e}). The book's rendering test needs it: {install}")
        }
    }
}

/// The chapters, in SUMMARY.md's order: their Markdown source file names.
fn chapters(src: &Path) -> Vec<String> {
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let chapters: Vec<String> = summary
        .match_indices("](")
        .map(|(i, _)| {
            let rest = &summary[i + 2..];
            rest[..rest.find(')').unwrap()].to_string()
        })
        .filter(|target| target.ends_with(".md"))
        .collect();
    assert!(chapters.len() >= 8, "SUMMARY.md lists {chapters:?}");
    chapters
}

/// The lines `{{#include path:range}}` takes from `text`, as mdBook reads the range:
/// `N` is line N, `N:` from N on, `:M` up to M, `N:M` from N to M (1-based, inclusive),
/// and a name is the part between `ANCHOR: name` and `ANCHOR_END: name`.
fn select(text: &str, range: Option<&str>) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(range) = range else {
        return text.to_string();
    };
    let number = |s: &str| s.trim().parse::<usize>().ok();
    let (from, to) = match range.split_once(':') {
        Some((a, b)) => (number(a).unwrap_or(1), number(b).unwrap_or(lines.len())),
        None => match number(range) {
            Some(n) => (n, n),
            None => {
                let name = range.trim();
                let picked: Vec<&str> = lines
                    .iter()
                    .skip_while(|l| !l.contains(&format!("ANCHOR: {name}")))
                    .skip(1)
                    .take_while(|l| !l.contains(&format!("ANCHOR_END: {name}")))
                    .copied()
                    .collect();
                return picked.join("\n");
            }
        },
    };
    lines
        .get(from.saturating_sub(1)..to.min(lines.len()))
        .unwrap_or_default()
        .join("\n")
}

/// `text` with every `{{#include}}` replaced by what it includes, as mdBook does
/// (included Markdown is expanded in turn).
fn expand(text: &str, dir: &Path, depth: usize) -> String {
    assert!(depth < 10, "includes nest too deep under {}", dir.display());
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("{{#include ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "{{#include ".len()..];
        let end = after.find("}}").expect("an include is closed with }}");
        let spec = after[..end].trim();
        let (file, range) = match spec.split_once(':') {
            Some((file, range)) => (file, Some(range)),
            None => (spec, None),
        };
        let path = dir.join(file);
        let included = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("include {}: {e}", path.display()));
        out.push_str(&expand(
            &select(&included, range),
            path.parent().unwrap(),
            depth + 1,
        ));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Code fences in Markdown (``` or ~~~, at any indentation: list items indent them).
fn fences(markdown: &str) -> usize {
    let mut count = 0;
    let mut open: Option<(char, usize)> = None;
    for line in markdown.lines() {
        let line = line.trim_start();
        let marker = line.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| line.chars().take_while(|c| *c == m).count());
        match (open, marker) {
            (None, Some(m)) if run >= 3 => {
                open = Some((m, run));
                count += 1;
            }
            (Some((m, len)), Some(c)) if c == m && run >= len && line[run..].trim().is_empty() => {
                open = None;
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "a code fence is never closed");
    count
}

/// Chromium's DOM of `page` once it has loaded (`--dump-dom`), frames allowed to read
/// the file:// pages they show.
fn dump_dom(page: &Path, profile: &Path) -> Output {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while the browser runs: a full pipe would stall it.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let readers = [
        std::thread::spawn(move || read_all(&mut stdout)),
        std::thread::spawn(move || read_all(&mut stderr)),
    ];
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "Chromium took over {BROWSER_TIMEOUT:?} to load {}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    Output {
        status,
        stdout,
        stderr,
    }
}

fn read_all(pipe: &mut impl std::io::Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes).unwrap();
    bytes
}

/// What is wrong with one rendered chapter, measured by the scratch page's script
/// (nothing: an empty list).
fn check_chapter(chapter: &str, markdown: &str, seen: &serde_json::Value) -> Vec<String> {
    if seen["main"] != true {
        return vec![format!(
            "{chapter}: the page has no <main>: it did not render or load"
        )];
    }
    let mut problems = Vec::new();
    let expected = fences(markdown);
    let (pre, pre_code) = (&seen["pre"], &seen["pre_code"]);
    if *pre != expected || *pre_code != expected {
        problems.push(format!(
            "{chapter}: {expected} code fences in the Markdown (includes expanded) but {pre} \
             code blocks in the page ({pre_code} of them <pre><code>): a fence or an include \
             does not render as written (mdBook does not indent an include's later lines \
             to the list item it sits in)"
        ));
    }
    let text = seen["text"].as_str().unwrap();
    if text.contains("```") {
        problems.push(format!(
            "{chapter}: a literal ``` shows in the rendered page"
        ));
    }
    if text.contains("{{#") {
        problems.push(format!(
            "{chapter}: an unexpanded {{{{#...}}}} shows in the rendered page"
        ));
    }
    for image in seen["broken_images"].as_array().unwrap() {
        problems.push(format!("{chapter}: image {image} did not load"));
    }
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if seen["title"] != true || words.len() < MIN_CHAPTER_TEXT {
        problems.push(format!(
            "{chapter}: a stub ({} characters of text{})",
            words.len(),
            if seen["title"] == true {
                ""
            } else {
                ", no title"
            }
        ));
    }
    problems
}

#[test]
fn every_chapter_renders_as_written_in_a_browser() {
    let mut mdbook = tool(
        "mdbook",
        "`cargo install mdbook --locked --version 0.5.4` (.ci/run installs it)",
    );
    tool(
        "chromium",
        "`apt-get install chromium` (Debian's package; .ci/run installs it)",
    );
    let scratch = tempfile::tempdir().unwrap();
    let html = scratch.path().join("html");
    let built = mdbook
        .arg("build")
        .arg(book())
        .arg("--dest-dir")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "mdbook build failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let src = book().join("src");
    let chapters = chapters(&src);
    let mut frames = String::new();
    for chapter in &chapters {
        let page = chapter.replace(".md", ".html");
        assert!(
            html.join(&page).is_file(),
            "{chapter} was not rendered to {page}"
        );
        frames.push_str(&format!(
            "<iframe data-chapter=\"{chapter}\" src=\"{page}\" width=\"1200\" height=\"2000\"></iframe>\n"
        ));
    }
    // A name mdBook does not use, beside the chapters so that their links resolve.
    let measure = html.join("measure-every-chapter.html");
    std::fs::write(
        &measure,
        format!("<!DOCTYPE html>\n<html><body>\n{frames}{MEASURE}\n</body></html>\n"),
    )
    .unwrap();

    let out = dump_dom(&measure, &scratch.path().join("profile"));
    let dom = String::from_utf8_lossy(&out.stdout);
    let results = dom
        .split_once("<pre id=\"results\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(json, _)| json.to_string())
        .unwrap_or_else(|| {
            panic!(
                "Chromium did not measure the chapters ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let results: Vec<serde_json::Value> = serde_json::from_str(&results).unwrap();
    assert_eq!(results.len(), chapters.len(), "one result per chapter");

    let mut problems = Vec::new();
    for (chapter, seen) in chapters.iter().zip(&results) {
        assert_eq!(seen["chapter"], chapter.as_str());
        let markdown = expand(
            &std::fs::read_to_string(src.join(chapter)).unwrap(),
            &src,
            0,
        );
        problems.extend(check_chapter(chapter, &markdown, seen));
    }
    assert!(
        problems.is_empty(),
        "the rendered book differs from its Markdown:\n{}",
        problems.join("\n")
    );
}

#[test]
fn fences_and_includes_are_counted_as_mdbook_reads_them() {
    let markdown =
        "text\n\n```c\nint x;\n```\n\n1. item\n\n   ```text\n   out\n   ```\n\n````md\n```\n````\n";
    assert_eq!(fences(markdown), 3);
    let five = "1\n2\n3\n4\n5";
    assert_eq!(select(five, Some("2:3")), "2\n3");
    assert_eq!(select(five, Some("4:")), "4\n5");
    assert_eq!(select(five, Some(":2")), "1\n2");
    assert_eq!(select(five, Some("5")), "5");
    assert_eq!(
        select("a\n// ANCHOR: x\nb\n// ANCHOR_END: x\nc", Some("x")),
        "b"
    );
    assert_eq!(select(five, None), five);
}
