//! bpflab's guest agent: PID 1 of the lesson VM.
//!
//! It prepares the system, reads the plan the host put in the initramfs, runs each
//! lesson, streams events to the host on the channel the plan names and powers off. It
//! must never exit: when init exits, the kernel panics.

mod lessons;
mod shell;
mod system;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use aya::{Btf, EbpfLoader, Endianness};
use bpflab_guest::loopback::Loopback;
use bpflab_guest::{unsupported_as_outcome, EventSink, Lab, TracePipe};
use bpflab_protocol::{Event, LessonPlan, Outcome, Plan, LESSONS_DIR, PLAN_PATH};

fn main() {
    let started_ms = system::boottime_ms();
    // A panic outside a lesson would end PID 1 and panic the kernel: say where it was.
    std::panic::set_hook(Box::new(|info| {
        bpflab_guest::console_log(format_args!("the agent panicked: {info}"));
    }));
    match prepare() {
        Ok((plan, sink)) => {
            if let Some(fault) = plan.fault {
                system::cause(fault);
            }
            if let Err(e) = run_plan(&plan, &sink, started_ms) {
                sink.send(&Event::AgentError {
                    message: format!("{e:#}"),
                });
            }
            sink.send_last(&Event::Done);
        }
        // No channel: the console is the only place left to say it.
        Err(e) => bpflab_guest::console_log(format_args!("cannot start: {e:#}")),
    }
    system::power_off();
}

fn prepare() -> anyhow::Result<(Plan, EventSink)> {
    system::mount_pseudo_filesystems()?;
    let text =
        std::fs::read_to_string(PLAN_PATH).with_context(|| format!("reading {PLAN_PATH}"))?;
    let plan: Plan = serde_json::from_str(&text).with_context(|| format!("parsing {PLAN_PATH}"))?;
    let channel = system::open_channel(&plan.channel)?;
    Ok((plan, EventSink::new(Box::new(channel))))
}

fn run_plan(plan: &Plan, sink: &EventSink, started_ms: u64) -> anyhow::Result<()> {
    let (kernel, machine) = system::uname();
    sink.send(&Event::Ready {
        kernel,
        machine,
        boot_ms: started_ms,
    });
    system::raise_memlock_limit()?;
    // Every feature a lesson can declare, asked of this kernel once: the matrix's table.
    // (Each probe loads a program or makes a map: a run of a few lessons skips them.)
    if plan.probe_features {
        let present = bpflab_protocol::Feature::ALL
            .into_iter()
            .filter(|f| bpflab_guest::features::has(*f).unwrap_or(false))
            .collect();
        sink.send(&Event::Features { present });
    }
    let mut loopback = Loopback::default();
    let trace = TracePipe::start(sink.clone())?;
    // The loader reads the kernel's own BTF itself, from the same file; BTF encoded for a
    // kernel without its own is handed to it.
    let kernel_btf = bpflab_guest::core_btf();
    let mut loader = EbpfLoader::new();
    if bpflab_guest::kernel_btf().is_none() {
        if let Some(path) = &kernel_btf {
            // The loader borrows its BTF for its whole life, which is this process's.
            let btf: &'static Btf = Box::leak(Box::new(
                Btf::parse_file(path, Endianness::default())
                    .with_context(|| format!("reading the BTF in {}", path.display()))?,
            ));
            loader.btf(Some(btf));
        }
    }
    // Programs lessons keep attached for the learner's shell; dropped (detached) at the end.
    let mut kept = Vec::new();

    for (index, lesson) in plan.lessons.iter().enumerate() {
        sink.send(&Event::LessonStart {
            lesson: lesson.number,
        });
        let started = Instant::now();
        let objects = Path::new(LESSONS_DIR).join(&lesson.dir);
        let mut lab = Lab::new(
            lesson,
            objects,
            sink.clone(),
            trace.clone(),
            loader,
            kernel_btf.clone(),
        );
        load_modules(lesson, sink);
        let outcome = run_lesson(lesson, &mut lab, &mut loopback);
        let last = index + 1 == plan.lessons.len();
        // The next lesson, or the learner's shell, sees the kernel's kprobes as the lesson
        // left them; after the last, the guest powers off and takes these along.
        match plan.shell || !last {
            true => lab.settle_probes(),
            false => lab.leave_probes(),
        }
        let (returned, lesson_kept) = lab.into_parts();
        loader = returned;
        // Only the shell needs them; otherwise a lesson's programs would still fire
        // during the next lessons of this boot and mix into their output.
        if plan.shell {
            kept.extend(lesson_kept);
        } else if last {
            // Detaching waits for an RCU grace period per probe, and the guest powers off
            // next: the last lesson's programs go with it.
            std::mem::forget(lesson_kept);
        }
        sink.send(&Event::LessonEnd {
            lesson: lesson.number,
            outcome,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }
    if plan.shell {
        // The learner may well try the network.
        if let Err(e) = loopback.bring_up() {
            bpflab_guest::console_log(format_args!("{e:#}"));
        }
        sink.send(&Event::ShellStart);
        shell::run().context("running the shell")?;
        // On a console shared with the channel (arm64), the shell's exit hung it up.
        sink.replace(Box::new(system::open_channel(&plan.channel)?));
    }
    drop(kept);
    Ok(())
}

/// Runs one lesson in `lab`: what it declares it needs is asked of the kernel first, and
/// the loopback interface brought up if it talks over it.
fn run_lesson(lesson: &LessonPlan, lab: &mut Lab, loopback: &mut Loopback) -> Outcome {
    match bpflab_guest::features::first_missing(&lesson.needs) {
        Ok(Some(feature)) => return Outcome::Unsupported(feature.missing()),
        Err(e) => return Outcome::Failed(format!("probing what the lesson needs: {e:#}")),
        Ok(None) => {}
    }
    let Some(run) = lessons::find(lesson.number) else {
        return Outcome::Failed(format!(
            "this agent was built without lesson {}; rebuild it (bpflab does so on every run)",
            lesson.number
        ));
    };
    if lesson.loopback {
        if let Err(e) = loopback.bring_up() {
            return Outcome::Failed(format!("{e:#}"));
        }
    }
    let outcome = outcome_of(std::panic::catch_unwind(AssertUnwindSafe(|| run(lab))));
    loopback.explain(outcome)
}

/// Loads the kernel modules `lesson` asks for, saying what each came to. One that cannot
/// be loaded is said too: the lesson then finds the kernel without it, and says what that
/// means for it (unsupported, naming the driver).
fn load_modules(lesson: &bpflab_protocol::LessonPlan, sink: &bpflab_guest::EventSink) {
    use bpflab_guest::modules::{load, Loaded};
    for name in &lesson.kernel_modules {
        let text = match load(name) {
            Ok(Loaded::Now(took)) => format!(
                "loaded {name}.ko, from the kernel's own package, in {:.1} ms",
                took.as_secs_f64() * 1000.0
            ),
            Ok(Loaded::AlreadyThere) => format!("{name} is in the kernel already"),
            Ok(Loaded::Absent) => format!(
                "{name}: not in the kernel, and no {name}.ko came with it (bpflab takes modules \
                 from the kernel's package where it knows the kernel's config and the package \
                 holds them)"
            ),
            Err(e) => format!("{name}: {e:#}"),
        };
        sink.send(&Event::Note {
            lesson: lesson.number,
            text,
        });
    }
}

/// Turns what a lesson returned (or how it panicked) into an outcome.
fn outcome_of(result: std::thread::Result<anyhow::Result<Outcome>>) -> Outcome {
    match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => match unsupported_as_outcome(Err(e)) {
            Ok(outcome) => outcome,
            // `{:#}` walks the error chain; aya puts the verifier log in its load error.
            Err(e) => Outcome::Failed(format!("{e:#}")),
        },
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Outcome::Failed(format!("the lesson panicked: {msg}"))
        }
    }
}
