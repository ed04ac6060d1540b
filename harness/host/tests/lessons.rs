//! Every lesson, run for real: a real kernel booted in QEMU, real eBPF loaded by the
//! guest agent. One boot per (kernel, arch) cell runs all the lessons, as the matrix
//! does. Each lesson's output is normalised (`bpflab::report::normalize`) and compared with its
//! snapshot, named after what the output legitimately depends on (`snapshot` in the
//! lesson's `lesson.toml`). Accept an intended change with `cargo insta review`.
//!
//! The lessons are the ones in `lessons/` (fixtures aside): a new lesson directory is
//! run here with no edit to this file. Its outcome is checked by its `kind`, and its
//! output against its snapshot, which `cargo insta review` records on the first run;
//! the lessons below with checks of their own are pinned down further.
//!
//! The cells here are the ones `cargo test` can afford on two emulated cores; the full
//! set of kernels runs in `bpflab matrix`.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

mod lesson_events;
mod packet_lessons;
mod toolbox;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use bpflab::arch::Arch;
use bpflab::kernel::KernelSpec;
use bpflab::lessons::{self, Kind, Lesson};
use bpflab::report::normalize;
use bpflab::report::view;
use bpflab::run::{self, LessonResult, RunRequest, RunResult};
use bpflab::vm::VmEnd;
use bpflab_protocol::Outcome;
use lesson_events::{notes, outputs, reason, trace_lines};

#[test]
fn lessons_on_6_1_x86_64() {
    check_cell("6.1", Arch::X86_64);
}

#[test]
fn lessons_on_6_1_arm64() {
    check_cell("6.1", Arch::Arm64);
}

#[test]
fn lessons_on_7_2_x86_64() {
    check_cell("7.2", Arch::X86_64);
}

/// Boots `series` on `arch` once, runs every lesson, and checks each.
fn check_cell(series: &str, arch: Arch) {
    let all =
        lessons::discover(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lessons")).unwrap();
    // Every lesson, mistakes included; fixtures have tests of their own.
    let numbers: Vec<u32> = all
        .iter()
        .filter(|l| l.kind != Kind::Fixture)
        .map(|l| l.number)
        .collect();
    let result = run_cell(series, arch, &numbers);
    let ran: Vec<u32> = result.lessons.iter().map(|l| l.number).collect();
    assert_eq!(ran, numbers, "{series} {arch}: every lesson has a result");
    let metas: Vec<&Lesson> = numbers
        .iter()
        .map(|n| lessons::find(&all, *n).unwrap())
        .collect();
    for (meta, lesson) in metas.iter().zip(&result.lessons) {
        check_lesson(meta, lesson, arch);
    }
    // Every snapshot is compared even after one differs, so that one `cargo insta review`
    // sees all of a cell's new or changed output (a new lesson's first, say).
    let differ: Vec<String> = metas
        .iter()
        .zip(&result.lessons)
        .filter_map(|(meta, lesson)| {
            let compare = AssertUnwindSafe(|| snapshot(meta, lesson, series, arch));
            std::panic::catch_unwind(compare)
                .err()
                .map(|_| format!("lesson {}", lesson.number))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{series} {arch}: the snapshots of {} are new or differ (above); accept intended \
         output with `cargo insta review`",
        differ.join(", ")
    );
}

fn run_cell(series: &str, arch: Arch, numbers: &[u32]) -> RunResult {
    let mut request = RunRequest::lesson(1);
    request.lessons = numbers.iter().map(|n| (*n, Vec::new())).collect();
    request.kernel = Some(KernelSpec::Series(series.into()));
    request.arch = arch;
    // Generous: CI machines emulate the guest CPU and may be busy.
    request.timeout = Some(Duration::from_secs(600));
    let result = run::run(&request, &mut |_| {}).expect("the run could not start");
    if result.vm.end != VmEnd::Finished {
        view::explain_end(&result);
        panic!(
            "{series} {arch}: the VM did not finish: {:?}",
            result.vm.end
        );
    }
    result
}

fn snapshot(meta: &Lesson, lesson: &LessonResult, series: &str, arch: Arch) {
    if let Some(name) = meta.snapshot_name(series, arch.name()) {
        insta::assert_snapshot!(
            name,
            normalize::transcript_with(lesson, meta.snapshot_collapse)
        );
    }
}

/// What each lesson must show, exactly, on any kernel and arch.
fn check_lesson(meta: &Lesson, lesson: &LessonResult, arch: Arch) {
    let n = lesson.number;
    let where_ = format!("lesson {n} on {arch}");
    // Lesson 4's fentry part cannot attach on arm64 6.1 (no ftrace direct calls before
    // 6.4): there the lesson is unsupported, for that reason only (checked below).
    let partly_unsupported = n == 4 && arch == Arch::Arm64;
    if meta.kind == Kind::Exercise {
        // An exercise as shipped is not solved, and its check says what is missing.
        match &lesson.outcome {
            Outcome::Failed(reason) => assert!(
                reason.starts_with("not solved yet: "),
                "{where_}: the check of an unsolved exercise says so: {reason}"
            ),
            other => panic!("{where_}: an unsolved exercise must fail its check: {other:?}"),
        }
    } else if meta.kind.passes() && !partly_unsupported {
        assert!(
            matches!(lesson.outcome, Outcome::Passed(_)),
            "{where_}: {:?}",
            lesson.outcome
        );
    } else {
        // A mistake fails on purpose (or cannot run here): one that passes teaches nothing.
        assert!(
            !matches!(lesson.outcome, Outcome::Passed(_)),
            "{where_} is a mistake but passed: {:?}",
            lesson.outcome
        );
    }
    // A mistake the kernel must refuse is refused for its reason, on every kernel here.
    if !meta.rejected_for.is_empty() {
        if let Err(why) = lessons::refused_for(&meta.rejected_for, &lesson.outcome) {
            panic!("{where_}: {why}");
        }
    }
    match n {
        1 => {
            assert_eq!(
                trace_lines(lesson, "Hello World!!"),
                3,
                "{where_}: one greeting per process created"
            );
            assert!(
                notes(lesson).iter().any(|t| t.contains("sys_clone")),
                "{where_}: says which symbol"
            );
        }
        4 => {
            // Each hook greets once per process created, naming the caller: pid 1.
            for hook in ["tracepoint", "raw tracepoint"] {
                let needle = format!("Hello World!! ({hook}) pid 1");
                assert_eq!(trace_lines(lesson, &needle), 3, "{where_}: {hook}");
            }
            let fentry = trace_lines(lesson, "Hello World!! (fentry) pid 1");
            match &lesson.outcome {
                Outcome::Passed(_) => assert_eq!(fentry, 3, "{where_}: fentry"),
                Outcome::Unsupported(reason) if partly_unsupported => {
                    assert_eq!(fentry, 0, "{where_}: fentry");
                    assert!(
                        reason.contains("raw tracepoint: 3 processes, 3 greetings from pid 1")
                            && reason
                                .contains("fentry: attaching to __arm64_sys_clone was refused"),
                        "{where_}: only fentry is unsupported: {reason}"
                    );
                }
                other => panic!("{where_}: {other:?}"),
            }
        }
        2 => {
            // The counter part prints a growing count, ending at exactly the messages sent.
            let counts: Vec<&str> = outputs(lesson)
                .into_iter()
                .filter_map(|l| l.strip_prefix("tcp_sendmsg: "))
                .collect();
            assert_eq!(counts, ["10", "20", "30"], "{where_}");
            assert_eq!(
                trace_lines(lesson, "tcp_time:"),
                5,
                "{where_}: one latency line per timed message"
            );
            let samples = outputs(lesson)
                .into_iter()
                .filter(|l| l.starts_with("127.0.0.1:"))
                .count();
            assert_eq!(
                samples, 5,
                "{where_}: one sample with addresses per message"
            );
        }
        3 => {
            let old = outputs(lesson)
                .into_iter()
                .filter(|l| l.contains("sec old was allocated at ip"))
                .count();
            assert!(old >= 3, "{where_}: the workload's threads must be seen");
            assert!(
                notes(lesson)
                    .iter()
                    .any(|t| t.starts_with("allocator entry point")),
                "{where_}"
            );
        }
        11 => {
            assert_eq!(
                trace_lines(lesson, "Hello World!! from init, pid 1"),
                3,
                "{where_}"
            );
        }
        12 => {
            // 2 processes that only clone, 3 that call execve: 3 greetings.
            assert_eq!(trace_lines(lesson, "Hello World!!"), 3, "{where_}");
            assert!(
                notes(lesson).iter().any(|t| t.contains("sys_execve")),
                "{where_}: says which symbol"
            );
        }
        102 => {
            // As shipped, the program still greets clone: one per process, 5.
            assert_eq!(trace_lines(lesson, "Hello World!!"), 5, "{where_}");
            assert!(
                reason(lesson).contains("still greets clone(2)"),
                "{where_}: {:?}",
                lesson.outcome
            );
        }
        101 => assert!(
            reason(lesson).contains("\"Hello World!!\" does not name its caller"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        201 => assert!(
            reason(lesson).contains("one count, 15, for both threads"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        202 => assert!(
            reason(lesson).contains("port 8080 (3) and port 9090 (2) were all timed"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        22 => {
            let samples: Vec<&str> = outputs(lesson)
                .into_iter()
                .filter(|l| l.starts_with("127.0.0.1:"))
                .collect();
            assert_eq!(samples.len(), 2, "{where_}: {samples:?}");
            assert!(
                samples.iter().all(|l| l.contains("→ 127.0.0.1:9090 ")),
                "{where_}: only port 9090: {samples:?}"
            );
        }
        301 => assert!(
            reason(lesson).contains("objects 1s old were reported"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        302 => assert!(
            reason(lesson).contains("the map `caches` is empty"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        32 => {
            let busiest = outputs(lesson)
                .into_iter()
                .find_map(|l| l.strip_prefix("  cache 0xffff"))
                .and_then(|l| l.split(": ").nth(1))
                .and_then(|n| n.strip_suffix(" objects"))
                .and_then(|n| n.parse::<u64>().ok());
            assert!(
                busiest.is_some_and(|n| n >= 3),
                "{where_}: the busiest cache, at a kernel address, gave out at least one \
                 object per thread: {:?}",
                outputs(lesson)
            );
        }
        21 => {
            let counts: Vec<&str> = outputs(lesson)
                .into_iter()
                .filter(|l| l.starts_with("thread "))
                .collect();
            assert_eq!(
                counts,
                [
                    "thread 1: 10 tcp_sendmsg calls",
                    "thread 2: 5 tcp_sendmsg calls"
                ],
                "{where_}"
            );
        }
        31 => {
            let old = outputs(lesson)
                .into_iter()
                .filter(|l| l.contains("is 2sec old") || l.contains("is 3sec old"))
                .count();
            assert!(
                old >= 3,
                "{where_}: the workload's threads must be seen past 2s"
            );
            assert!(
                !outputs(lesson).iter().any(|l| l.contains("is 1sec old")),
                "{where_}: nothing younger than 2s"
            );
        }
        90 => {
            let Outcome::Failed(reason) = &lesson.outcome else {
                panic!(
                    "{where_}: the verifier accepted a NULL dereference: {:?}",
                    lesson.outcome
                );
            };
            assert!(reason.contains("map_value_or_null"), "{where_}: {reason}");
            // BTF line info: the verifier quotes the C source line it rejected.
            assert!(
                reason.contains("; __sync_fetch_and_add(count, 1);"),
                "{where_}: {reason}"
            );
        }
        91 => {
            // Renamed in 5.10: unsupported, with the names tried, on every kernel tested here.
            let Outcome::Unsupported(reason) = &lesson.outcome else {
                panic!("{where_}: expected unsupported, got {:?}", lesson.outcome);
            };
            assert!(reason.contains("_do_fork"), "{where_}: {reason}");
        }
        // The tracing toolbox (lessons 5 to 7, their exercises and solutions).
        5 | 6 | 7 | 501 | 601 | 701 | 51 | 61 | 71 => toolbox::check(lesson, &where_),
        // The packet lessons' checks are in packet_lessons/; the others are checked by
        // their outcome and snapshot only.
        _ => packet_lessons::check(lesson, &where_),
    }
}
