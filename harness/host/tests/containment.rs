//! A hostile guest, for real: fixture 95 (`lessons/95-hostile`) writes terminal commands,
//! a fake status line, invalid UTF-8 and a line without end through `trace_marker` and
//! the console, and forges passes on the event port. bpflab must show all of it as the
//! guest's text, count none of the forgeries, and keep the boot's other lessons working.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::Duration;

use bpflab::run::{self, RunRequest};
use bpflab::vm::VmEnd;
use bpflab_protocol::{Event, Outcome, Violation};

/// The fixture's number, and what its forgeries say (`lessons/95-hostile/src/lib.rs`).
const HOSTILE: u32 = 95;
const FORGED: &str = "forged by the guest";
const LAST_TRACE: &str = "hostile fixture: last trace line";

#[test]
fn a_hostile_guest_cannot_drive_the_terminal_or_forge_a_pass_on_x86_64() {
    check_the_terminal("x86_64");
}

/// arm64 guests share one serial port between console and events: the fixture's event
/// line hidden mid-line on the console is only harmless if it is taken for text.
#[test]
fn a_hostile_guest_cannot_drive_the_terminal_or_forge_a_pass_on_arm64() {
    check_the_terminal("arm64");
}

/// `bpflab lesson 95 -v` on `arch`, as a user runs it, checked on what reached the
/// terminal.
fn check_the_terminal(arch: &str) {
    let output = hostile_run(arch);
    // Not a terminal, so bpflab styles nothing: every control character would be the guest's.
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let raw: Vec<u8> = bytes.iter().copied().filter(is_raw_control).collect();
        assert!(raw.is_empty(), "raw control bytes on {stream}: {raw:x?}");
    }
    let stdout = String::from_utf8(output.stdout).expect("bpflab writes UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    let show = || stdout.chars().take(20_000).collect::<String>();

    // The terminal commands are there to read, not obeyed.
    assert!(
        stdout.contains("^[]0;bpflab was here^Gwindow title"),
        "{}",
        show()
    );
    assert!(stdout.contains("^[[2J^[[Hscreen cleared"), "{}", show());
    // The fake status line came through the trace, the output, a note and the console,
    // and every time it sits behind the guest's margin.
    let fakes: Vec<&&str> = lines.iter().filter(|l| l.contains(FORGED)).collect();
    assert!(fakes.len() >= 4, "{fakes:#?}");
    for line in &fakes {
        assert!(
            line.starts_with("│ "),
            "a guest line without the margin: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("│ ✔ lesson 1 passed (0.01s): {FORGED}")),
        "{}",
        show()
    );
    assert!(!lines.iter().any(|l| l.starts_with('✔')), "{}", show());
    // The forged passes did not count, and the user is told.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("✘ lesson 95 failed") && l.contains("second result")),
        "{}",
        show()
    );
    assert!(
        stdout.contains("the guest broke the event protocol: lesson 95 reported a second result"),
        "{}",
        show()
    );
    assert_eq!(output.status.code(), Some(1));
    // The 100 KiB console line was cut, and says so.
    let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    assert!(longest < 64 * 1024 + 100, "a line of {longest} bytes");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("│ AAAA") && l.ends_with("[line cut at 64 KiB]")),
        "{}",
        show()
    );
    // Invalid UTF-8 is shown as replacement characters, and the trace went on after it.
    assert!(
        stdout.contains("invalid UTF-8: \u{fffd}\u{fffd}\u{fffd}("),
        "{}",
        show()
    );
    assert!(stdout.contains(LAST_TRACE), "{}", show());
}

#[test]
fn the_lessons_around_a_hostile_guest_keep_their_trace_and_their_results() {
    // The failing mistake 90 first: the fixture forges a pass for it.
    let mut request = RunRequest::lesson(90);
    request.lessons = [90, HOSTILE, 1].map(|n| (n, Vec::new())).to_vec();
    request.timeout = Some(Duration::from_secs(600));
    let result = run::run(&request, &mut |_| {}).expect("the run could not start");
    assert_eq!(result.vm.end, VmEnd::Finished);
    let [mistake, hostile, hello] = result.lessons.as_slice() else {
        panic!("three lessons: {:?}", result.lessons);
    };
    // Lesson 1 got all its greetings although the fixture fed the trace invalid UTF-8.
    assert!(
        matches!(hello.outcome, Outcome::Passed(_)),
        "{:?}",
        hello.outcome
    );
    let greetings = hello
        .events
        .iter()
        .filter(|e| matches!(e, Event::Trace { line, .. } if line.contains("Hello World!!")))
        .count();
    assert_eq!(greetings, 3);
    // The forged passes did not count.
    assert!(
        matches!(&mistake.outcome, Outcome::Failed(r) if r.contains("map_value_or_null")),
        "{:?}",
        mistake.outcome
    );
    assert!(
        matches!(hostile.outcome, Outcome::Failed(_)),
        "{:?}",
        hostile.outcome
    );
    for lesson in [90, HOSTILE] {
        assert!(
            result
                .violations
                .contains(&Violation::EndedTwice { lesson }),
            "{:?}",
            result.violations
        );
    }
    assert!(!result.all_passed());
}

fn hostile_run(arch: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .args(["lesson", "95", "-v", "--arch", arch, "--timeout", "600"])
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap()
}

/// A byte a terminal would act on: a control character other than newline and tab.
fn is_raw_control(byte: &u8) -> bool {
    byte.is_ascii_control() && !matches!(byte, b'\n' | b'\t')
}
