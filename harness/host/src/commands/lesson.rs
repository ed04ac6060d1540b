//! `bpflab lesson` and `bpflab lessons`.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::args::LessonArgs;
use crate::config::{self};
use crate::kernel::KernelSpec;
use crate::lessons;
use crate::report::view;
use crate::run::{self, RunRequest, RunResult};
use crate::vm::VmEnd;
use bpflab_protocol::Outcome;

/// Runs one lesson (or some of its parts) in a guest, live.
pub fn run(args: LessonArgs) -> anyhow::Result<ExitCode> {
    let request = RunRequest {
        lessons: vec![(args.number, args.parts)],
        kernel: args.kernel.as_deref().map(KernelSpec::parse),
        arch: args.arch,
        accel: args.accel,
        machine: args.machine,
        timeout: match (args.timeout, args.shell) {
            (Some(secs), _) => Some(Duration::from_secs(secs)),
            (None, true) => None,
            (None, false) => Some(crate::run::DEFAULT_TIMEOUT),
        },
        shell: args.shell,
        cpu: args.cpu,
        cache_dir: None,
        memory_mib: args.memory,
        verbose_kernel: args.verbose,
        refresh_kernel: args.refresh_kernel,
        fault: args.inject_fault,
        probe_features: false,
    };
    let mut view = view::LiveView::new(args.verbose, args.shell);
    let result = run::run(&request, &mut |p| view.show(p));
    view.finish();
    let result = result?;
    view::explain_end(&result);
    for lesson in &result.lessons {
        // Lessons that ended in the guest were already shown live; the others get their
        // outcome here.
        if !lesson
            .events
            .iter()
            .any(|e| matches!(e, bpflab_protocol::Event::LessonEnd { .. }))
        {
            println!(
                "{}",
                view::outcome_line(lesson.number, &lesson.outcome, None)
            );
        }
    }
    if args.timings {
        view::print_timings(&result.timings);
    }
    Ok(exit_status(&result))
}

/// 0 when every lesson passed; 3 when none failed but some cannot run on this kernel
/// (unsupported), so that scripts can tell "not here" from "broken"; 1 otherwise (a
/// failure, or a VM that did not finish).
fn exit_status(result: &RunResult) -> ExitCode {
    let ran_through = result.vm.end == VmEnd::Finished && result.violations.is_empty();
    let none_failed = result
        .lessons
        .iter()
        .all(|l| !matches!(l.outcome, Outcome::Failed(_)));
    if result.all_passed() {
        ExitCode::SUCCESS
    } else if ran_through && none_failed && !result.lessons.is_empty() {
        ExitCode::from(3)
    } else {
        ExitCode::FAILURE
    }
}

/// Lists the lessons a learner can run.
pub fn list() -> anyhow::Result<ExitCode> {
    let all = lessons::discover(&config::source_root().join("lessons"))?;
    // Exercises and mistakes to learn from are listed apart; test fixtures are not for
    // learners.
    let of_kind = |kind| {
        all.iter()
            .filter(move |l: &&lessons::Lesson| l.kind == kind)
    };
    let lessons: Vec<_> = all
        .iter()
        .filter(|l| matches!(l.kind, lessons::Kind::Lesson | lessons::Kind::Solution))
        .collect();
    let exercises: Vec<_> = of_kind(lessons::Kind::Exercise).collect();
    let mistakes: Vec<_> = of_kind(lessons::Kind::Mistake).collect();
    // One column of names for every list, as wide as the longest.
    let width = lessons
        .iter()
        .chain(&exercises)
        .chain(&mistakes)
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    let show = |l: &lessons::Lesson| {
        let parts = match l.parts.is_empty() {
            true => String::new(),
            false => format!("  (parts: {})", l.parts.join(", ")),
        };
        println!("{:>3}  {:<width$}  {}{parts}", l.number, l.name, l.title);
    };
    lessons.iter().copied().for_each(show);
    if !exercises.is_empty() {
        println!(
            "\nExercises (each fails until you solve it: change the code where it says EXERCISE; \
             the book's Exercises chapter has the prompts):"
        );
        exercises.iter().copied().for_each(show);
    }
    if !mistakes.is_empty() {
        println!("\nMistakes to learn from (they fail on purpose: read the error, then fix them):");
        mistakes.iter().copied().for_each(show);
    }
    Ok(ExitCode::SUCCESS)
}
