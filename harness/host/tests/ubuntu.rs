//! Kernels from Ubuntu's archive, for real, where an Ubuntu mirror is configured
//! (`BPFLAB_UBUNTU_MIRROR`, `ubuntu_mirror` in the config file, or an Ubuntu host's apt
//! sources): every lesson runs on Ubuntu's 4.4 on x86-64, in one boot, on the machine
//! bpflab picks for it, and the chain of trust from Ubuntu's keys holds against a
//! tampering proxy ([`common::proxy`]).
//!
//! Where no Ubuntu mirror is configured (CI has none) these checks cannot run, and say so:
//! each prints `ignored, no Ubuntu mirror configured: …` and is counted as ignored. That
//! needs a decision at run time, which the standard test harness cannot make, so this
//! file has a small harness of its own (`harness = false`), with libtest's output format
//! and its name filters.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

// Not every helper of the shared proxy is used here.
#[allow(dead_code)]
mod common;

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bpflab::arch::Arch;
use bpflab::kernel::apt::{mirror::Mirrors, Distribution};
use bpflab::kernel::KernelSpec;
use bpflab::lessons::{self, Kind, Lesson};
use bpflab::run::{self, RunRequest, RunResult};
use bpflab::vm::VmEnd;
use bpflab_protocol::{Event, Outcome};
use common::proxy::{assert_refused, Attack, Proxy};

/// Every lesson but the fixtures, booted once on Ubuntu's 4.4 for all the checks of it
/// (`cargo test` pays one boot for them), on the default machine: `pc` for 4.4 under
/// emulation.
fn boot_4_4() -> &'static (Vec<Lesson>, RunResult) {
    static BOOT: OnceLock<(Vec<Lesson>, RunResult)> = OnceLock::new();
    BOOT.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lessons");
        let all = lessons::discover(&root).unwrap();
        let chosen: Vec<Lesson> = all
            .into_iter()
            .filter(|l| l.kind != Kind::Fixture)
            .collect();
        let mut request = RunRequest::lesson(1);
        request.lessons = chosen.iter().map(|l| (l.number, Vec::new())).collect();
        request.kernel = Some(KernelSpec::Series("4.4".into()));
        request.arch = Arch::X86_64;
        request.timeout = Some(Duration::from_secs(600));
        let result = run::run(&request, &mut |_| {}).expect("the run could not start");
        assert_eq!(
            result.vm.end,
            VmEnd::Finished,
            "{:?}",
            result.vm.console_tail
        );
        (chosen, result)
    })
}

/// Lesson 1 on Ubuntu's 4.4: through `sys_clone` (no `__x64_` wrappers before 4.17).
fn lesson_1_on_4_4_x86_64() {
    let (_, result) = boot_4_4();
    assert!(
        result.kernel.origin.contains("(Ubuntu xenial-updates)"),
        "{}",
        result.kernel.origin
    );
    let release = result.guest_release.clone().unwrap_or_default();
    assert!(release.starts_with("4.4.0-"), "{release}");
    let lesson = result.lessons.iter().find(|l| l.number == 1).unwrap();
    assert!(
        matches!(lesson.outcome, Outcome::Passed(_)),
        "{:?}",
        lesson.outcome
    );
    let (mut greetings, mut attached) = (0, false);
    for event in &lesson.events {
        match event {
            Event::Trace { line, .. } => greetings += usize::from(line.contains("Hello World!!")),
            Event::Note { text, .. } => attached |= text == "kprobe attached to sys_clone",
            _ => {}
        }
    }
    assert_eq!(greetings, 3, "one greeting per process created");
    assert!(attached, "lesson 1 attaches to sys_clone on 4.4");
}

/// What 4.4 lacks, lesson by lesson: every part's reason, the parts that run as well as
/// those that cannot (a lesson with one part the kernel cannot run is unsupported, its
/// other parts' results beside the reason).
const MISSING_ON_4_4: &[(u32, &[&str])] = &[
    (
        4,
        &[
            "tracepoint: needs BPF programs on tracepoints (BPF_PROG_TYPE_TRACEPOINT), new in \
             Linux 4.7",
            "raw-tracepoint: needs raw tracepoint programs (BPF_PROG_TYPE_RAW_TRACEPOINT), new \
             in Linux 4.17",
            "fentry: needs the kernel's own BTF",
        ],
    ),
    (
        5,
        &[
            "perf-buffer: 204 messages, 106 samples in order from the sending thread, 98 lost",
            "ring-buffer: needs the BPF ring buffer (BPF_MAP_TYPE_RINGBUF), new in Linux 5.8",
        ],
    ),
    (
        6,
        &[
            "array: 13 messages, every slot as sent",
            "per-cpu-array: needs per-CPU maps (BPF_MAP_TYPE_PERCPU_ARRAY, _PERCPU_HASH), new \
             in Linux 4.6",
            "hash: sizes 1 to 16 kept with their counts, 8 new ones refused (E2BIG)",
            "lru-hash: needs LRU hash maps (BPF_MAP_TYPE_LRU_HASH), new in Linux 4.10",
            "pinning: the pin reads what the program counted",
            "histogram: 42 messages, each in the bucket of its size",
        ],
    ),
    (
        7,
        &["needs the stack trace map (BPF_MAP_TYPE_STACK_TRACE), new in Linux 4.6"],
    ),
    (
        51,
        &["needs the BPF ring buffer (BPF_MAP_TYPE_RINGBUF), new in Linux 5.8"],
    ),
    (
        71,
        &["needs the stack trace map (BPF_MAP_TYPE_STACK_TRACE), new in Linux 4.6"],
    ),
];

/// Every lesson on Ubuntu's 4.4 (no kernel BTF, no BTF support at all), in one boot:
/// each passes, or is unsupported naming what the kernel lacks, and the mistakes fail the
/// way they teach. Lesson 2's counter must count exactly while its latency part, which
/// needs CO-RE, is unsupported rather than run with the wrong offsets.
fn every_lesson_on_4_4_x86_64_passes_or_says_what_it_lacks() {
    let (chosen, result) = boot_4_4();
    let ran: Vec<u32> = result.lessons.iter().map(|l| l.number).collect();
    let wanted: Vec<u32> = chosen.iter().map(|l| l.number).collect();
    assert_eq!(ran, wanted, "every lesson has a result");
    for (meta, lesson) in chosen.iter().zip(&result.lessons) {
        let (n, outcome) = (lesson.number, &lesson.outcome);
        match (n, outcome) {
            (2, Outcome::Unsupported(reason)) => {
                assert!(
                    reason.contains("counter: 30 messages sent, 30 tcp_sendmsg calls counted"),
                    "{reason}"
                );
                // The part declares it needs BTF for CO-RE (part_needs), which the guest
                // finds missing before the object is ever loaded.
                assert!(
                    reason.contains("latency: needs kernel BTF for CO-RE (CONFIG_DEBUG_INFO_BTF"),
                    "{reason}"
                );
            }
            // Exercise 2.2's solution times messages like lesson 2's latency part, with
            // CO-RE reads, which need BTF that Ubuntu's 4.4 does not have.
            (22, Outcome::Unsupported(reason)) => {
                assert!(reason.contains("BTF for CO-RE"), "{reason}")
            }
            (90, Outcome::Failed(reason)) => {
                assert!(reason.contains("map_value_or_null"), "{reason}")
            }
            // _do_fork still exists in 4.4: the old tutorial's probe works there.
            (91, Outcome::Passed(reason)) => assert!(reason.contains("_do_fork"), "{reason}"),
            (2 | 22 | 90 | 91, other) => panic!("lesson {n}: {other:?}"),
            (n, other) if MISSING_ON_4_4.iter().any(|(m, _)| *m == n) => {
                let Outcome::Unsupported(reason) = other else {
                    panic!("lesson {n} needs what 4.4 lacks: {other:?}");
                };
                let (_, expected) = MISSING_ON_4_4.iter().find(|(m, _)| *m == n).unwrap();
                for part in *expected {
                    assert!(
                        reason.contains(part),
                        "lesson {n}: {part:?} not in {reason}"
                    );
                }
            }
            // A lesson passes; a mistake fails (or cannot run), never passes.
            (_, other) => assert_eq!(
                matches!(other, Outcome::Passed(_)),
                meta.kind.passes(),
                "lesson {n}: {other:?}"
            ),
        }
    }
}

/// Ubuntu's real, signed xenial InRelease with a forged `SHA256:` section after its
/// signature: refused, and nothing it names is fetched.
fn a_section_appended_after_an_ubuntu_signature_is_never_read() {
    let proxy = Proxy::start(Attack::AppendAfterSignature);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "4.4", "--refresh-kernel"]);
    assert_refused(&output, &stderr, "xenial-updates's InRelease is refused");
    assert!(
        stderr.contains("not be a mirror of Ubuntu's archive"),
        "{stderr}"
    );
    assert_eq!(proxy.requested("Packages"), Vec::<String>::new());
    assert_eq!(proxy.requested(".deb"), Vec::<String>::new());
}

/// The pinned 4.4 package with one byte changed: refused by its pinned hash, and no
/// other package sought in its place.
fn a_pinned_ubuntu_kernel_that_fails_its_hash_is_never_replaced() {
    let stderr = common::proxy::a_corrupt_pinned_kernel_is_refused("4.4");
    assert!(stderr.contains("BPFLAB_UBUNTU_MIRROR"), "{stderr}");
}

const CHECKS: &[(&str, fn())] = &[
    ("lesson_1_on_4_4_x86_64", lesson_1_on_4_4_x86_64),
    (
        "every_lesson_on_4_4_x86_64_passes_or_says_what_it_lacks",
        every_lesson_on_4_4_x86_64_passes_or_says_what_it_lacks,
    ),
    (
        "a_section_appended_after_an_ubuntu_signature_is_never_read",
        a_section_appended_after_an_ubuntu_signature_is_never_read,
    ),
    (
        "a_pinned_ubuntu_kernel_that_fails_its_hash_is_never_replaced",
        a_pinned_ubuntu_kernel_that_fails_its_hash_is_never_replaced,
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let chosen: Vec<&(&str, fn())> = CHECKS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    // Where no mirror is configured, the reason is the one bpflab itself gives.
    let config = bpflab::config::Config::load().unwrap();
    let skip = Mirrors::discover(&config, Distribution::Ubuntu)
        .err()
        .map(|e| e.to_string());
    let (mut passed, mut failed, mut ignored) = (0, Vec::new(), 0);
    println!("\nrunning {} tests", chosen.len());
    for (name, check) in &chosen {
        if let Some(why) = &skip {
            println!("test {name} ... ignored, {why}");
            ignored += 1;
            continue;
        }
        match std::panic::catch_unwind(check) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {verdict}. {passed} passed; {} failed; {ignored} ignored; 0 measured; \
         {} filtered out; finished in {:.2}s\n",
        failed.len(),
        CHECKS.len() - chosen.len(),
        started.elapsed().as_secs_f64()
    );
    match failed.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}
