//! Inputs at the edges: numbers out of range, paths that are not what they should be,
//! reports with holes in them. Each is refused with an error that says what is allowed,
//! or, for a comma in `TMPDIR`, simply works.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use clap::Parser as _;

/// clap's verdict on a command line: `Ok` when it parses, else the error as shown.
fn parse(args: &str) -> Result<(), String> {
    let args = std::iter::once("bpflab").chain(args.split_whitespace());
    bpflab::cli::Cli::try_parse_from(args)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn refused(args: &str) -> String {
    parse(args).expect_err(&format!("`{args}` was accepted"))
}

/// Runs the built binary in `cwd` with the cache and config of its own there, plus `env`.
fn bpflab(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bpflab"));
    cmd.args(args)
        .current_dir(cwd)
        .env("BPFLAB_CACHE_DIR", cwd.join("cache"))
        .env("BPFLAB_CONFIG", cwd.join("no-config.toml"));
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The run failed (exit status 1) and said `needle`.
fn assert_fails_saying(output: &Output, needle: &str) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in:\n{stderr}");
}

#[test]
fn a_timeout_of_zero_or_beyond_a_day_is_refused_with_the_range() {
    for args in [
        "lesson 1 --timeout 18446744073709551615",
        "lesson 1 --timeout 0",
        "lesson 1 --timeout 86401",
        "matrix --timeout 18446744073709551615",
    ] {
        let error = refused(args);
        assert!(error.contains("give 1 to 86400 seconds (a day)"), "{error}");
    }
    parse("lesson 1 --timeout 86400").unwrap();
    parse("matrix --timeout 1").unwrap();
}

#[test]
fn guest_memory_below_the_minimum_is_refused_and_help_says_the_minimum() {
    let min = bpflab::vm::qemu::MIN_MEMORY_MIB;
    for args in ["lesson 1 --memory 0", "lesson 1 --memory 16"] {
        let error = refused(args);
        assert!(
            error.contains(&format!("give at least {min} MiB")),
            "{error}"
        );
    }
    parse(&format!("lesson 1 --memory {min}")).unwrap();
    let help = refused("help lesson");
    assert!(help.contains(&format!("at least {min}")), "{help}");
}

#[test]
fn zero_jobs_are_refused() {
    let error = refused("matrix --jobs 0");
    assert!(error.contains("give 1 VM at a time or more"), "{error}");
    assert!(
        error.contains("leave --jobs out for one per CPU"),
        "{error}"
    );
    let error = refused("kernels build 6.1 --jobs 0");
    assert!(error.contains("give 1 compile job or more"), "{error}");
    parse("matrix --jobs 1").unwrap();
}

#[test]
fn merge_reports_fails_on_an_empty_merge_a_silent_cell_and_missing_cells() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, json: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, json).unwrap();
        path.to_string_lossy().into_owned()
    };
    let cell = |kernel: &str, lessons: &str| {
        format!(
            r#"{{"kernel":"{kernel}","arch":"x86_64","origin":null,"release":null,
                "unavailable":null,"lessons":{lessons},"boot_s":null,"run_s":null,"wall_s":1.0}}"#
        )
    };
    let passed = r#"[{"lesson":1,"outcome":{"status":"passed","reason":"ok"}}]"#;
    let empty = write("empty.json", r#"{"cells":[]}"#);
    let silent = write(
        "silent.json",
        &format!(r#"{{"cells":[{}]}}"#, cell("6.1", "[]")),
    );
    let good = write(
        "good.json",
        &format!(r#"{{"cells":[{}]}}"#, cell("5.10", passed)),
    );
    let other = write(
        "other.json",
        &format!(r#"{{"cells":[{}]}}"#, cell("7.2", passed)),
    );
    let merge = |args: &[&str]| {
        let mut all = vec!["merge-reports", "--report-dir", "merged"];
        all.extend(args);
        bpflab(dir.path(), &all, &[])
    };

    assert_fails_saying(&merge(&[&empty]), "the reports hold no cells at all");
    assert_fails_saying(
        &merge(&[&silent, &good]),
        "6.1 x86_64: no lesson results and no reason",
    );
    assert_fails_saying(
        &merge(&["--expect", "3", &good, &other]),
        "2 of the 3 expected cells arrived",
    );
    // The table of what did arrive is written all the same.
    assert!(dir.path().join("merged/matrix.md").is_file());
    let whole = merge(&["--expect", "2", &good, &other]);
    assert!(whole.status.success(), "{}", stderr(&whole));
}

#[test]
fn an_empty_or_relative_cache_directory_is_refused_and_nothing_is_written_where_bpflab_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (value, needle) in [
        ("", "BPFLAB_CACHE_DIR is empty: give an absolute path"),
        ("rel/dir", "BPFLAB_CACHE_DIR is `rel/dir`, a relative path"),
    ] {
        let output = bpflab(dir.path(), &["kernels"], &[("BPFLAB_CACHE_DIR", value)]);
        assert_fails_saying(&output, needle);
    }
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "cache_dir = \"cache-here\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .arg("kernels")
        .current_dir(dir.path())
        .env_remove("BPFLAB_CACHE_DIR")
        .env("BPFLAB_CONFIG", &config)
        .output()
        .unwrap();
    assert_fails_saying(&output, "is `cache-here`, a relative path");
    assert_fails_saying(&output, &format!("cache_dir in {}", config.display()));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["config.toml"]);
}

#[test]
fn a_relative_xdg_cache_home_is_ignored_and_said_so() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .arg("kernels")
        .current_dir(home.path())
        .env_remove("BPFLAB_CACHE_DIR")
        .env("BPFLAB_CONFIG", home.path().join("no-config.toml"))
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", "rel-cache")
        .output()
        .unwrap();
    let used = home.path().join(".cache/bpflab");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "XDG_CACHE_HOME is `rel-cache`, a relative path, which the XDG spec says to \
             ignore: using {}",
            used.display()
        )),
        "{}",
        stderr(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("cache: {}", used.display())),
        "{stdout}"
    );
    assert!(!home.path().join("rel-cache").exists());
}

#[test]
fn a_kernel_path_that_is_a_device_or_a_directory_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_string_lossy().into_owned();
    for (kernel, needle) in [
        (
            "/dev/zero",
            "kernel image /dev/zero is not a regular file but a device",
        ),
        (path.as_str(), "is not a regular file but a directory"),
    ] {
        let output = bpflab(dir.path(), &["lesson", "1", "--kernel", kernel], &[]);
        assert_fails_saying(&output, needle);
    }
    let missing = dir.path().join("bzImage");
    let output = bpflab(
        dir.path(),
        &["lesson", "1", "--kernel", &missing.to_string_lossy()],
        &[],
    );
    assert_fails_saying(&output, "does not exist");
}

/// Boots a real VM: QEMU's option strings split at commas, so the channel's path in a
/// `TMPDIR` holding one must be escaped.
#[test]
fn a_comma_in_tmpdir_does_not_break_the_vm() {
    let tmp = tempfile::tempdir().unwrap();
    let with_comma = tmp.path().join("a,b");
    std::fs::create_dir(&with_comma).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .args(["lesson", "1"])
        .env("TMPDIR", &with_comma)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr(&output));
    assert!(stdout.contains("lesson 1 passed"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(&with_comma).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
