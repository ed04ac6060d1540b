//! The live rendering of a guest's events, and the end of a run explained: what a
//! person sees while a lesson runs. Guest text is always shown through `guest_text`.

use std::time::Duration;

use bpflab_protocol::{Event, Outcome};
use console::style;
use indicatif::ProgressBar;

use crate::guest_text::visible;
use crate::run::{Progress, RunResult, Stage, Timings};
use crate::term::{spinner, status};
use crate::vm::accel::Accel;
use crate::vm::{VmEnd, VmLine};

/// What every line of guest text starts with on the terminal. bpflab's own lines never
/// do, so nothing the guest prints can pass for one of them (a "✔ lesson 1 passed").
fn gutter() -> String {
    format!("{} ", style("│").dim())
}

/// Guest `text` as terminal lines, shown [`visible`]ly: the first follows `head`, a start
/// bpflab chose; each further one (a verifier log has many) sits behind the gutter.
fn guest_block(head: &str, text: &str, paint: fn(&str) -> String) -> String {
    let mut lines = text.trim_end_matches('\n').split('\n');
    let mut out = format!(
        "{head}{}",
        paint(&visible(lines.next().unwrap_or_default()))
    );
    for line in lines {
        out.push('\n');
        out.push_str(&gutter());
        out.push_str(&paint(&visible(line)));
    }
    out
}

fn plain(text: &str) -> String {
    text.to_string()
}

fn green(text: &str) -> String {
    style(text).green().to_string()
}

fn dim(text: &str) -> String {
    style(text).dim().to_string()
}

/// Renders a run live: stages, the boot, and every event as the guest sends it.
pub struct LiveView {
    verbose: bool,
    interactive: bool,
    booting: Option<ProgressBar>,
    accel_note: Option<String>,
}

impl LiveView {
    /// `verbose` also shows the guest's console (kernel messages); `interactive` means the
    /// console is passed through to the terminal as it is (`--shell`).
    pub fn new(verbose: bool, interactive: bool) -> LiveView {
        LiveView {
            verbose,
            interactive,
            booting: None,
            accel_note: None,
        }
    }

    /// Shows one piece of progress.
    pub fn show(&mut self, progress: Progress) {
        match progress {
            Progress::Stage(Stage::Kernel, what) => status(format!("kernel: {what}")),
            Progress::Stage(_, what) if self.verbose => status(what),
            Progress::Stage(..) => {}
            Progress::Accel(choice) => {
                if choice.accel == Accel::Tcg {
                    self.accel_note = Some(format!("TCG emulation ({})", choice.reason));
                }
            }
            Progress::Booting(kernel) => {
                if let Some(note) = self.accel_note.take() {
                    status(note);
                }
                self.booting = Some(spinner(format!(
                    "booting {} ({})",
                    kernel.series, kernel.arch
                )));
            }
            Progress::Vm(VmLine::Console(line)) => {
                if self.verbose && !self.interactive {
                    self.println(guest_block(&gutter(), line, dim));
                }
            }
            Progress::Vm(VmLine::Event(event)) => self.event(event),
            Progress::Violation(violation) => self.println(format!(
                "{} the guest broke the event protocol: {violation}",
                style("warning:").yellow().bold()
            )),
        }
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::Ready {
                kernel,
                machine,
                boot_ms,
            } => {
                if let Some(bar) = self.booting.take() {
                    bar.finish_and_clear();
                }
                status(format!(
                    "guest up: Linux {} ({}), init after {:.2}s of guest time",
                    visible(kernel),
                    visible(machine),
                    *boot_ms as f64 / 1000.0
                ));
            }
            Event::LessonStart { lesson } => {
                self.println(format!(
                    "{}",
                    style(format!("── lesson {lesson} ──")).bold()
                ));
            }
            Event::Note { text, .. } => {
                self.println(guest_block(&format!("{} ", style("•").cyan()), text, plain))
            }
            Event::Output { line, .. } => self.println(guest_block(&gutter(), line, plain)),
            Event::Trace { line, .. } => self.println(guest_block(&gutter(), line, green)),
            Event::LessonEnd {
                lesson,
                outcome,
                elapsed_ms,
            } => {
                let secs = *elapsed_ms as f64 / 1000.0;
                self.println(outcome_line(*lesson, outcome, Some(secs)));
            }
            Event::AgentError { message } => self.println(guest_block(
                &format!("{} guest agent: ", style("error:").red().bold()),
                message,
                plain,
            )),
            Event::Features { .. } | Event::ShellStart | Event::Done => {}
        }
    }

    fn println(&self, line: String) {
        match &self.booting {
            Some(bar) => bar.println(line),
            // The terminal may be raw while the guest's shell owns it: end lines by hand.
            None if self.interactive => {
                print!("{}\r\n", line.replace('\n', "\r\n"));
                let _ = std::io::Write::flush(&mut std::io::stdout());
            }
            None => println!("{line}"),
        }
    }

    /// Clears anything still on screen (a spinner) when the run ends.
    pub fn finish(&mut self) {
        if let Some(bar) = self.booting.take() {
            bar.finish_and_clear();
        }
    }
}

/// `✔ lesson 1 passed: ...` and friends. The reason comes from the guest: its further
/// lines (a verifier log) sit behind the guest gutter.
pub fn outcome_line(lesson: u32, outcome: &Outcome, secs: Option<f64>) -> String {
    let took = secs.map(|s| format!(" ({s:.2}s)")).unwrap_or_default();
    let head = match outcome {
        Outcome::Passed(_) => format!(
            "{} lesson {lesson} passed{took}: ",
            style("✔").green().bold()
        ),
        Outcome::Failed(_) => format!("{} lesson {lesson} failed{took}: ", style("✘").red().bold()),
        Outcome::Unsupported(_) => format!(
            "{} lesson {lesson} unsupported on this kernel{took}: ",
            style("⚠").yellow().bold()
        ),
    };
    guest_block(&head, outcome.reason(), plain)
}

/// After the run: explains a VM that did not end normally, with the console's last words.
pub fn explain_end(result: &RunResult) {
    let headline = match &result.vm.end {
        VmEnd::Finished => return,
        VmEnd::KernelPanic if result.vm.panic_line.as_deref().is_some_and(|l| l.contains("Attempted to kill init")) => {
            "the guest agent crashed (the kernel panics when init exits); its last words are below".to_string()
        }
        VmEnd::KernelPanic => "the guest kernel panicked".to_string(),
        VmEnd::TimedOut(t) => format!(
            "the guest did not finish within {}s and was stopped (raise --timeout if the machine is just slow)",
            t.as_secs()
        ),
        VmEnd::ExitedEarly(why) => why.clone(),
        VmEnd::Interrupted => "interrupted".to_string(),
    };
    eprintln!("{} {headline}", style("error:").red().bold());
    if let Some(panic) = &result.vm.panic_line {
        eprintln!("{}", guest_block(&gutter(), panic.trim(), plain));
    }
    if !result.vm.console_tail.is_empty() {
        eprintln!("last lines of the guest console:");
        for line in &result.vm.console_tail {
            eprintln!("{}", guest_block(&gutter(), line, plain));
        }
    }
    if !result.vm.qemu_stderr.is_empty() {
        eprintln!(
            "QEMU said:\n  {}",
            result.vm.qemu_stderr.replace('\n', "\n  ")
        );
    }
}

/// The `--timings` table.
pub fn print_timings(t: &Timings) {
    let secs = |d: Option<Duration>| {
        d.map(|d| format!("{:.2}s", d.as_secs_f64()))
            .unwrap_or_else(|| "-".into())
    };
    eprintln!("timings:");
    eprintln!("  tools (host or cache)  {}", secs(Some(t.tools)));
    eprintln!("  kernel (fetch/cache)   {}", secs(Some(t.kernel)));
    eprintln!("  build (agent + clang)  {}", secs(Some(t.build)));
    eprintln!("  initramfs              {}", secs(Some(t.initramfs)));
    eprintln!(
        "  boot (QEMU → agent)    {}   of which guest kernel → init {}",
        secs(t.boot),
        secs(t.guest_boot)
    );
    eprintln!(
        "  first trace line       {}   after QEMU start",
        secs(t.first_trace)
    );
    eprintln!("  lessons                {}", secs(t.lessons));
    eprintln!("  shutdown               {}", secs(t.shutdown));
    eprintln!("  total                  {}", secs(Some(t.total)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_of_guest_text_can_pass_for_one_of_bpflabs() {
        let reason = "the verifier said no\n✔ lesson 1 passed (0.01s): 3 greetings\n\x1b[2J";
        let shown = outcome_line(90, &Outcome::Failed(reason.into()), Some(0.5));
        assert_eq!(
            shown,
            "✘ lesson 90 failed (0.50s): the verifier said no\n\
             │ ✔ lesson 1 passed (0.01s): 3 greetings\n\
             │ ^[[2J"
        );
    }
}
