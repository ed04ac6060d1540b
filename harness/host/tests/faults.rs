//! Failures of the guest and of the user, injected for real: a guest kernel that panics,
//! a guest that hangs, an agent that never reports, a user who presses Ctrl-C. Each must
//! end with a clear message, no QEMU left running and no temporary files left behind.

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
fn a_kernel_without_kprobes_is_refused_before_booting() {
    // The default kernel, given by path, with a build config beside it that lacks kprobes.
    let kernel = bpflab::kernel::obtain(
        &bpflab::kernel::KernelSpec::Series("6.1".into()),
        bpflab::arch::Arch::host().unwrap(),
        &bpflab::catalog::Catalog::load(&bpflab::config::source_root().join("images/catalog.toml"))
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
        config.replace("CONFIG_KPROBES=y", "# CONFIG_KPROBES is not set"),
    )
    .unwrap();

    let mut request = RunRequest::lesson(1);
    request.kernel = Some(bpflab::kernel::KernelSpec::Path(image));
    let err = run::run(&request, &mut |_| {}).unwrap_err();
    assert!(
        format!("{err:#}").contains("lacks what the lessons need: CONFIG_KPROBES=y (kprobes)"),
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
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
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
    assert!(
        processes_mentioning(&needle).is_empty(),
        "QEMU survived Ctrl-C"
    );
    assert_empty(tmp.path());
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
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
