//! Each lesson, run for real: a real kernel booted in QEMU, real eBPF loaded by the guest
//! agent. The lesson's output is normalised (see `bpflab::normalize`) and compared with
//! its snapshot; accept an intended change with `cargo insta review`.

use std::time::Duration;

use bpflab::run::{self, RunRequest, RunResult};
use bpflab::vm::VmEnd;
use bpflab::{normalize, ui};
use bpflab_protocol::{Event, Outcome};

/// Runs one lesson on the default kernel of this machine's arch, and explains any failure
/// with the guest console's tail.
fn run_lesson(number: u32) -> RunResult {
    let mut request = RunRequest::lesson(number);
    // Generous: CI machines emulate the guest CPU and may be busy.
    request.timeout = Some(Duration::from_secs(300));
    let result = run::run(&request, &mut |_| {}).expect("the run could not start");
    if result.vm.end != VmEnd::Finished {
        ui::explain_end(&result);
        panic!("the VM did not finish: {:?}", result.vm.end);
    }
    result
}

fn snapshot_name(result: &RunResult, number: u32) -> String {
    // Names of probed symbols differ by arch, so snapshots are per arch.
    format!("lesson{number}-{}", result.kernel.arch)
}

#[test]
fn lesson_1_greets_every_clone() {
    let result = run_lesson(1);
    let lesson = &result.lessons[0];
    assert!(
        matches!(lesson.outcome, Outcome::Passed(_)),
        "{:?}",
        lesson.outcome
    );
    let greetings = lesson
        .events
        .iter()
        .filter(|e| matches!(e, Event::Trace { line, .. } if line.contains("Hello World!!")))
        .count();
    assert_eq!(
        greetings, 3,
        "one greeting per process the workload created"
    );
    insta::assert_snapshot!(snapshot_name(&result, 1), normalize::transcript(lesson));
}

/// Lines of a lesson's events of one kind that contain `needle`.
fn count(result: &RunResult, needle: &str, trace: bool) -> usize {
    result.lessons[0]
        .events
        .iter()
        .filter(|e| match e {
            Event::Trace { line, .. } if trace => line.contains(needle),
            Event::Output { line, .. } if !trace => line.contains(needle),
            _ => false,
        })
        .count()
}

#[test]
fn lesson_2_counts_every_send_exactly_and_times_each_message() {
    let result = run_lesson(2);
    let lesson = &result.lessons[0];
    assert!(
        matches!(lesson.outcome, Outcome::Passed(_)),
        "{:?}",
        lesson.outcome
    );
    // The counter part prints a growing count, ending at exactly the messages sent.
    let counts: Vec<&str> = lesson
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Output { line, .. } => line.strip_prefix("tcp_sendmsg: "),
            _ => None,
        })
        .collect();
    assert_eq!(counts, ["10", "20", "30"]);
    assert_eq!(
        count(&result, "tcp_time:", true),
        5,
        "one latency line per timed message"
    );
    assert_eq!(
        count(&result, "127.0.0.1:", false),
        5,
        "one sample with addresses per message"
    );
    insta::assert_snapshot!(snapshot_name(&result, 2), normalize::transcript(lesson));
}

#[test]
fn lesson_3_finds_objects_older_than_a_second() {
    let result = run_lesson(3);
    let lesson = &result.lessons[0];
    assert!(
        matches!(lesson.outcome, Outcome::Passed(_)),
        "{:?}",
        lesson.outcome
    );
    assert!(count(&result, "sec old was allocated at ip", false) >= 3);
    assert!(
        lesson.events.iter().any(
            |e| matches!(e, Event::Note { text, .. } if text.starts_with("allocator entry point"))
        ),
        "the lesson says which allocator symbol it probed"
    );
    insta::assert_snapshot!(snapshot_name(&result, 3), normalize::transcript(lesson));
}

#[test]
fn mistake_90_shows_the_verifier_log_with_the_c_line() {
    let result = run_lesson(90);
    let Outcome::Failed(reason) = &result.lessons[0].outcome else {
        panic!(
            "the verifier accepted a NULL dereference: {:?}",
            result.lessons[0].outcome
        );
    };
    assert!(reason.contains("map_value_or_null"), "{reason}");
    // BTF line info: the verifier quotes the C source line it rejected.
    assert!(
        reason.contains("; __sync_fetch_and_add(count, 1);"),
        "{reason}"
    );
}
