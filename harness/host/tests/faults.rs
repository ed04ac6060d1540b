//! Failures of the guest and of the user, injected for real: a guest kernel that panics,
//! a guest that hangs, an agent that never reports, a user who presses Ctrl-C. Each must
//! end with a clear message, no QEMU left running and no temporary files left behind.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bpflab::run::{self, RunRequest, RunResult};
use bpflab::vm::VmEnd;
use bpflab_protocol::{Fault, Outcome};

fn run_with_fault(fault: Fault, timeout: Duration) -> RunResult {
    let mut request = RunRequest::lesson(1);
    request.fault = Some(fault);
    request.timeout = Some(timeout);
    run::run(&request, &mut |_| {}).expect("the run could not start")
}

/// Processes whose command line mentions `needle` (QEMU's names our scratch directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && !cmdline.contains("cargo") {
                found.push(cmdline);
            }
        }
    }
    found
}

fn assert_failed_with(result: &RunResult, needle: &str) {
    match &result.lessons[0].outcome {
        Outcome::Failed(reason) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The guest panicked, the lesson failed, and the panic line shown to the user holds
/// `evidence` (the console's tail, shown too, holds the oops).
fn assert_panicked_with(fault: Fault, evidence: &str) {
    let result = run_with_fault(fault, Duration::from_secs(300));
    assert_eq!(result.vm.end, VmEnd::KernelPanic);
    let panic = result.vm.panic_line.clone().unwrap_or_default();
    assert!(panic.contains("Kernel panic - not syncing"), "{panic:?}");
    assert!(panic.contains(evidence), "{panic:?}");
    assert!(!result.vm.console_tail.is_empty());
    assert_failed_with(&result, "panicked");
}

#[test]
fn a_kernel_panic_is_reported_with_the_console_tail() {
    assert_panicked_with(Fault::KernelPanic, "sysrq triggered crash");
}

#[test]
fn an_agent_crash_is_reported_as_such() {
    assert_panicked_with(Fault::AgentCrash, "Attempted to kill init");
}

#[test]
fn a_kernel_without_bpf_is_refused_before_booting() {
    // The default kernel, given by path, with a build config beside it that lacks kprobes.
    let kernel = bpflab::kernel::obtain(
        &bpflab::kernel::KernelSpec::Series("6.1".into()),
        bpflab::arch::Arch::host().unwrap(),
        &bpflab::kernel::catalog::Catalog::load(
            &bpflab::config::source_root().join("images/catalog.toml"),
        )
        .unwrap(),
        &bpflab::config::Config::load().unwrap(),
        false,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("vmlinuz");
    std::fs::copy(&kernel.image, &image).unwrap();
    let config = std::fs::read_to_string(kernel.config.unwrap()).unwrap();
    std::fs::write(
        dir.path().join("config"),
        config.replace("CONFIG_BPF_SYSCALL=y", "# CONFIG_BPF_SYSCALL is not set"),
    )
    .unwrap();

    let mut request = RunRequest::lesson(1);
    request.kernel = Some(bpflab::kernel::KernelSpec::Path(image));
    let err = run::run(&request, &mut |_| {}).unwrap_err();
    assert!(
        format!("{err:#}").contains(
            "lacks what bpflab's guest needs: CONFIG_BPF_SYSCALL=y (the bpf() system call)"
        ),
        "{err:#}"
    );
}

#[test]
fn a_hung_guest_is_stopped_at_the_timeout() {
    let result = run_with_fault(Fault::Hang, Duration::from_secs(25));
    assert_eq!(result.vm.end, VmEnd::TimedOut(Duration::from_secs(25)));
    // QEMU's own lifetime, from start to being killed: the timeout, plus a little.
    assert!(
        result.vm.wall < Duration::from_secs(25 + 30),
        "the timeout did not stop the VM: {:?}",
        result.vm.wall
    );
    assert_failed_with(&result, "did not finish within 25s");
}

#[test]
fn a_guest_that_never_reports_is_a_failure_not_a_pass() {
    let result = run_with_fault(Fault::Silent, Duration::from_secs(300));
    assert!(
        matches!(result.vm.end, VmEnd::ExitedEarly(_)),
        "{:?}",
        result.vm.end
    );
    assert_failed_with(&result, "before the guest finished");
    assert!(!result.all_passed());
}

#[test]
fn ctrl_c_while_the_guest_runs_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .args(["lesson", "1", "--inject-fault", "hang", "--timeout", "300"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until QEMU runs (its command line names our TMPDIR), then press "Ctrl-C".
    let deadline = Instant::now() + Duration::from_secs(600);
    let needle = tmp.path().to_string_lossy().into_owned();
    while processes_mentioning(&needle).is_empty() {
        assert!(Instant::now() < deadline, "QEMU never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "bpflab exited before QEMU started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.id() as i32;
    press_ctrl_c(&mut child, pid);
    assert!(
        processes_mentioning(&needle).is_empty(),
        "QEMU survived Ctrl-C"
    );
    assert_empty(tmp.path());
}

/// Sends SIGINT to `target` (a pid, or a process group as a negative number) and checks
/// that bpflab stopped as interrupted: exit status 130 and its message.
fn press_ctrl_c(child: &mut std::process::Child, target: i32) {
    // SAFETY: a signal to our own child or its process group, not yet reaped.
    unsafe { libc::kill(target, libc::SIGINT) };
    let status = child.wait().unwrap();
    let stderr: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert_eq!(status.code(), Some(130), "{stderr:#?}");
    assert!(
        stderr.iter().any(|l| l.contains("interrupted")),
        "{stderr:#?}"
    );
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Mistake 91 probes a function renamed in 5.10: on the default kernel (newer) it cannot
/// run, which a script must be able to tell from a failure.
#[test]
fn a_lesson_the_kernel_cannot_run_exits_with_status_3_and_says_why() {
    let output = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .args(["lesson", "91"])
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(3), "{shown}");
    assert!(
        shown.contains("unsupported on this kernel") && shown.contains("_do_fork"),
        "{shown}"
    );
}

#[test]
fn an_unwritable_cache_directory_is_a_clear_error() {
    // Nothing can be created under /proc, even by root.
    let output = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .args(["lesson", "1"])
        .env("BPFLAB_CACHE_DIR", "/proc/bpflab-cache")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("creating the cache directory /proc/bpflab-cache"),
        "{stderr}"
    );
    assert!(
        stderr.contains("set BPFLAB_CACHE_DIR to use another"),
        "{stderr}"
    );
}

/// A process as /proc shows it.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    comm: String,
    cmdline: String,
}

fn all_processes() -> Vec<Proc> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        found.push(Proc {
            pid,
            ppid: fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0),
            pgrp: fields.get(2).and_then(|f| f.parse().ok()).unwrap_or(0),
            comm: head.split_once('(').map(|(_, c)| c).unwrap_or("").into(),
            cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
        });
    }
    found
}

/// Every process below `root`.
fn descendants(root: u32) -> Vec<Proc> {
    let all = all_processes();
    let mut found: Vec<Proc> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            parents.push(p.pid);
            found.push(p.clone());
        }
    }
    found
}

#[test]
fn ctrl_c_during_a_kernel_build_stops_every_compiler_and_keeps_nothing() {
    // A cache of its own, so the build really starts; the source is borrowed from the
    // usual cache when it is there (it is 140 MB), else downloaded.
    let cache = tempfile::tempdir().unwrap();
    let config = bpflab::config::Config::load().unwrap();
    let source = config.cache_dir.join("sources/6.1");
    if source.join("record.json").is_file() {
        let dest = cache.path().join("sources/6.1");
        std::fs::create_dir_all(&dest).unwrap();
        for entry in std::fs::read_dir(&source).unwrap().flatten() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
    // In a process group of its own, as a shell runs a foreground job: the terminal's
    // Ctrl-C goes to that group.
    use std::os::unix::process::CommandExt as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .args(["kernels", "build", "6.1", "--arch", "x86_64"])
        .env("BPFLAB_CACHE_DIR", cache.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
    // make building bzImage, and a compiler (cc1) at work: the build is under way.
    let building = |procs: &[Proc]| {
        procs.iter().any(|p| p.cmdline.contains("bzImage")) && procs.iter().any(|p| p.comm == "cc1")
    };
    let mut groups = std::collections::BTreeSet::new();
    loop {
        let below = descendants(child.id());
        groups.extend(below.iter().map(|p| p.pgrp));
        if building(&below) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build never started compiling"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "bpflab exited before compiling"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    groups.extend(descendants(child.id()).iter().map(|p| p.pgrp));
    // To the whole group, as a terminal does.
    let group = -(child.id() as i32);
    press_ctrl_c(&mut child, group);
    // make and its compilers were stopped, not left to finish on their own.
    let survivors = || -> Vec<Proc> {
        all_processes()
            .into_iter()
            .filter(|p| groups.contains(&p.pgrp))
            .collect()
    };
    let settle = Instant::now() + Duration::from_secs(10);
    while !survivors().is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(survivors().is_empty(), "{:#?}", survivors());
    // Neither the scratch tree nor a half-built kernel is kept.
    let kernels = cache.path().join("kernels/x86_64");
    let left: Vec<_> = std::fs::read_dir(&kernels)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|name| name.to_string_lossy().ends_with(".lock")),
        "left behind in {}: {left:?}",
        kernels.display()
    );
}
