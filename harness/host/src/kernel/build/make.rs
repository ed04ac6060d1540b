//! Running the build's commands: quietly (their output shown only on failure), or with
//! the latest line on a spinner and the whole log kept.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::term;

pub(super) fn run_quiet(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let output = cmd.output().with_context(|| format!("running {what}"))?;
    // Ctrl-C reaches make too (same terminal): its failure is the interruption.
    crate::interrupt::check()?;
    if !output.status.success() {
        bail!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

pub(super) fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let output = cmd.output().context("running the compiler")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs the build, showing its latest line on a spinner and keeping the whole log.
pub(super) fn build_with_progress(
    mut cmd: Command,
    log_path: &Path,
    what: &str,
) -> anyhow::Result<()> {
    let mut log = std::fs::File::create(log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    use std::os::unix::process::CommandExt as _;
    // make and its compilers in a process group of their own, so that Ctrl-C stops every
    // one of them (even while make prints nothing, as when linking vmlinux).
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let group = child.id() as libc::pid_t;
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !finished.load(Ordering::SeqCst) {
                if crate::interrupt::interrupted() {
                    // SAFETY: signals the group we created; it exists until we reap make.
                    unsafe { libc::kill(-group, libc::SIGTERM) };
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let spinner = term::spinner(what.to_string());
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(Result::ok)
    {
        use std::io::Write;
        let _ = writeln!(log, "{line}");
        spinner.set_message(format!("{what}: {}", line.trim()));
    }
    let status = child.wait()?;
    finished.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watcher.join();
    spinner.finish_and_clear();
    let errors = err_thread.join().unwrap_or_default();
    {
        use std::io::Write;
        for line in &errors {
            let _ = writeln!(log, "{line}");
        }
    }
    crate::interrupt::check()?;
    if !status.success() {
        let tail: Vec<&String> = errors.iter().rev().take(25).rev().collect();
        bail!(
            "{what} failed ({status}); the last messages:\n  {}\nwhole log: {}",
            tail.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            log_path.display()
        );
    }
    Ok(())
}
