//! What a lesson's user-space side gets to work with inside the guest.
//!
//! A lesson is a function `fn run(lab: &mut Lab) -> anyhow::Result<Outcome>`. The [`Lab`]
//! hands it its compiled BPF objects, the kernel's symbols, the trace pipe and a few
//! workloads, and carries what it prints back to the learner's terminal. Everything about
//! booting, channels and reporting stays out of the lesson's way.
#![deny(missing_docs)]

mod btf;
pub mod echo;
pub mod features;
mod helpers;
pub mod histogram;
mod kallsyms;
pub mod loopback;
pub mod modules;
pub mod netlink;
pub mod netns;
pub mod packets;
mod probe;
pub mod release;
mod sink;
mod trace;
pub mod traffic;
pub mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aya::{Ebpf, EbpfLoader};

pub use bpflab_protocol::{Feature, LessonPlan, Outcome};
pub use btf::{core_btf, core_relocations, kernel_btf, NEEDS_KERNEL_BTF, VMLINUX_BTF};
pub use kallsyms::{syscall_candidates, Kallsyms};
pub use sink::EventSink;
pub use trace::{message as trace_message, TracePipe};

/// Writes a diagnostic line to the guest console. Never panics (unlike `eprintln!`):
/// PID 1 must not die because its console cannot be written.
pub fn console_log(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "bpflab-agent: {message}");
}

/// A lesson cannot run on this kernel. Return it (`Err(Unsupported(..).into())`) and the
/// lesson is reported as unsupported with the reason, never as passed or failed.
#[derive(Debug, thiserror::Error)]
#[error("unsupported on this kernel: {0}")]
pub struct Unsupported(pub String);

/// `result` with an error that says the kernel lacks something turned into
/// [`Outcome::Unsupported`]: an [`Unsupported`], or a program the verifier refused for
/// calling a helper this kernel does not have (named, with the version that brought it).
/// For the agent, and for a lesson of several parts, so that one part the kernel cannot
/// run does not hide how the others went. Other errors stay errors.
pub fn unsupported_as_outcome(result: anyhow::Result<Outcome>) -> anyhow::Result<Outcome> {
    match result {
        Err(e) => match e.downcast::<Unsupported>() {
            Ok(Unsupported(reason)) => Ok(Outcome::Unsupported(reason)),
            // `{:#}` walks the chain to aya's load error, which carries the verifier log.
            Err(e) => match helpers::missing_helper(&format!("{e:#}")) {
                Some(reason) => Ok(Outcome::Unsupported(reason)),
                None => Err(e),
            },
        },
        ok => ok,
    }
}

/// One outcome for the parts of a lesson that ran: failed if any failed, else unsupported
/// if any was, else passed; the reason lists every part's, in order.
pub fn combine_parts(outcomes: Vec<Outcome>) -> Outcome {
    let reasons = outcomes
        .iter()
        .map(|o| o.reason().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if outcomes.iter().any(|o| matches!(o, Outcome::Failed(_))) {
        Outcome::Failed(reasons)
    } else if outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Unsupported(_)))
    {
        Outcome::Unsupported(reasons)
    } else {
        Outcome::Passed(reasons)
    }
}

/// The lesson's view of the guest.
pub struct Lab {
    lesson: u32,
    objects_dir: PathBuf,
    parts: Vec<String>,
    part_needs: BTreeMap<String, Vec<Feature>>,
    sink: EventSink,
    trace: Arc<TracePipe>,
    loader: EbpfLoader<'static>,
    /// The BTF the loader resolves CO-RE relocations against ([`core_btf`]), if any.
    kernel_btf: Option<PathBuf>,
    kallsyms: Option<Kallsyms>,
    kept: Vec<Ebpf>,
    /// Kprobes placed to answer [`Lab::kernel_symbol`], until [`Lab::settle_probes`].
    probes: std::sync::Mutex<Vec<std::os::fd::OwnedFd>>,
}

impl Lab {
    /// Creates the lab for one lesson. Used by the agent, not by lessons. `kernel_btf` is
    /// the BTF `loader` resolves CO-RE relocations against ([`core_btf`]), if any.
    pub fn new(
        plan: &LessonPlan,
        objects_dir: PathBuf,
        sink: EventSink,
        trace: Arc<TracePipe>,
        loader: EbpfLoader<'static>,
        kernel_btf: Option<PathBuf>,
    ) -> Lab {
        trace.set_lesson(plan.number);
        Lab {
            lesson: plan.number,
            objects_dir,
            parts: plan.parts.clone(),
            part_needs: plan.part_needs.clone(),
            sink,
            trace,
            loader,
            kernel_btf,
            kallsyms: None,
            kept: Vec::new(),
            probes: Default::default(),
        }
    }

    /// Gives back the loader, so the next lesson can reuse it (building one reparses the
    /// kernel's BTF, which costs about half a second under emulation), and the programs
    /// the lesson asked to keep attached.
    pub fn into_parts(self) -> (EbpfLoader<'static>, Vec<Ebpf>) {
        (self.loader, self.kept)
    }

    /// Keeps the lesson's programs attached after it returns, for the learner to explore
    /// with `--shell`. Without `--shell` they are detached when the run ends.
    pub fn keep_attached(&mut self, bpf: Ebpf) {
        self.kept.push(bpf);
    }

    /// Loads one of the lesson's compiled objects (e.g. `"hello.bpf.o"`): creates its maps.
    /// Programs are verified when the lesson calls `load()` on each of them.
    ///
    /// An object that reads kernel structs with CO-RE is [`Unsupported`] on a kernel
    /// without BTF: loaded there, it would read the wrong fields.
    pub fn load(&mut self, object: &str) -> anyhow::Result<Ebpf> {
        let path = self.objects_dir.join(object);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading BPF object {}", path.display()))?;
        let relocations =
            core_relocations(&bytes).with_context(|| format!("reading BPF object {object}"))?;
        if relocations > 0 && self.kernel_btf.is_none() {
            return Err(Unsupported(format!(
                "{object} reads kernel structs with CO-RE ({relocations} relocations), which \
                 {NEEDS_KERNEL_BTF}"
            ))
            .into());
        }
        self.loader
            .load(&bytes)
            .with_context(|| format!("loading BPF object {object}"))
    }

    /// Loads `object` and hands its kprobe program `function` to the kernel, attaching
    /// nothing: for a mistake, whose lesson is the kernel's answer. A rejection is the
    /// error, carrying the verifier's whole log; [`Outcome::Passed`] only if the kernel
    /// accepts the program.
    pub fn verify_kprobe(&mut self, object: &str, function: &str) -> anyhow::Result<Outcome> {
        let mut bpf = self.load(object)?;
        let program: &mut aya::programs::KProbe = bpf
            .program_mut(function)
            .with_context(|| format!("{object} has no function `{function}`"))?
            .try_into()?;
        program
            .load()
            .with_context(|| format!("the kernel rejected `{function}`"))?;
        Ok(Outcome::Passed(format!(
            "the kernel accepted `{function}`: the mistake is fixed"
        )))
    }

    /// The loader used by [`Lab::load`], to change settings first (e.g. a map's size).
    pub fn loader(&mut self) -> &mut EbpfLoader<'static> {
        &mut self.loader
    }

    /// Whether the learner asked for this part of the lesson (all parts when none named).
    pub fn wants_part(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == part)
    }

    /// Checks what part `part` declares it needs (`part_needs` in `lesson.toml`):
    /// [`Unsupported`], naming the first feature this kernel lacks, if any. A lesson of
    /// several parts calls it as each part starts.
    pub fn require_part(&self, part: &str) -> anyhow::Result<()> {
        let needs = self
            .part_needs
            .get(part)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match features::first_missing(needs)? {
            Some(feature) => Err(Unsupported(feature.missing()).into()),
            None => Ok(()),
        }
    }

    /// Tells the learner something about the run (shown between trace lines).
    pub fn note(&self, text: impl Into<String>) {
        self.sink.send(&bpflab_protocol::Event::Note {
            lesson: self.lesson,
            text: text.into(),
        });
    }

    /// Prints a line of the lesson's own output, like the articles' `print` calls.
    pub fn print(&self, line: impl Into<String>) {
        self.sink.send(&bpflab_protocol::Event::Output {
            lesson: self.lesson,
            line: line.into(),
        });
    }

    /// The kernel's symbol table, read once per lesson on first use (it is large: reading
    /// it takes a moment under emulation).
    pub fn kallsyms(&mut self) -> anyhow::Result<&Kallsyms> {
        if self.kallsyms.is_none() {
            let text =
                std::fs::read_to_string("/proc/kallsyms").context("reading /proc/kallsyms")?;
            self.kallsyms = Some(Kallsyms::parse(&text));
        }
        Ok(self.kallsyms.as_ref().expect("just filled"))
    }

    /// The first of `candidates` this kernel can place a kprobe on. Unsupported (with the
    /// names tried) if none.
    ///
    /// The kernel is asked name by name through the kprobe PMU, which takes milliseconds;
    /// kernels without it (before 4.17) are answered from `/proc/kallsyms`.
    pub fn kernel_symbol(&mut self, candidates: &[&str]) -> anyhow::Result<String> {
        let mut answered = true;
        for &name in candidates {
            match probe::kprobe(name) {
                probe::Probeable::Yes(probe) => {
                    if let Ok(probes) = self.probes.get_mut() {
                        probes.push(probe);
                    }
                    return Ok(name.to_string());
                }
                probe::Probeable::No => {}
                probe::Probeable::Unknown => {
                    answered = false;
                    break;
                }
            }
        }
        let found = match answered {
            true => None,
            false => self.kallsyms()?.first_of(candidates),
        };
        match found {
            Some(name) => Ok(name.to_string()),
            None => {
                Err(Unsupported(format!("no kernel symbol {}", candidates.join(" or "))).into())
            }
        }
    }

    /// Removes the kprobes bpflab placed to answer [`Lab::kernel_symbol`] (and
    /// [`Lab::syscall_fnname`]): for a lesson that lists the kernel's kprobes, which would
    /// otherwise show one more. They stay until then, because removing one waits for an
    /// RCU grace period with the trace events' lock (`event_mutex`) held (about 40 ms
    /// under emulation, a third of lesson 1), which would hold up the lesson's own attach. The agent calls this
    /// after each lesson but the last, whose probes go with the guest's power-off.
    pub fn settle_probes(&self) {
        if let Ok(mut probes) = self.probes.lock() {
            probes.clear();
        }
    }

    /// Leaves those kprobes in place for good, after a boot's last lesson: the guest
    /// powers off next, which takes them without a grace period to wait for.
    pub fn leave_probes(&self) {
        if let Ok(mut probes) = self.probes.lock() {
            std::mem::forget(std::mem::take(&mut *probes));
        }
    }

    /// The kernel function behind a system call on this kernel and arch, e.g.
    /// `__x64_sys_clone` (≥ 4.17), `__arm64_sys_clone`, or `sys_clone` (older kernels).
    pub fn syscall_fnname(&mut self, syscall: &str) -> anyhow::Result<String> {
        let names = syscall_candidates(syscall, std::env::consts::ARCH);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.kernel_symbol(&names)
    }

    /// Waits until `count` trace lines containing `needle` arrived since the lesson began
    /// (or `timeout` passed) and returns those seen. Every trace line is also streamed to
    /// the learner as it arrives, whether it matches or not.
    pub fn wait_for_trace(&self, needle: &str, count: usize, timeout: Duration) -> Vec<String> {
        self.trace.wait_for(needle, count, timeout)
    }

    /// Every trace line that arrived since the lesson began.
    pub fn trace_lines(&self) -> Vec<String> {
        self.trace.wait_for("", usize::MAX, Duration::ZERO)
    }
}

#[cfg(test)]
mod part_tests {
    use super::*;

    #[test]
    fn a_failed_part_fails_the_lesson_and_an_unsupported_one_is_said() {
        let pass = || Outcome::Passed("a".into());
        let unsupported = || Outcome::Unsupported("b".into());
        assert_eq!(
            combine_parts(vec![pass(), pass()]),
            Outcome::Passed("a; a".into())
        );
        assert_eq!(
            combine_parts(vec![pass(), unsupported()]),
            Outcome::Unsupported("a; b".into())
        );
        assert_eq!(
            combine_parts(vec![unsupported(), Outcome::Failed("c".into())]),
            Outcome::Failed("b; c".into())
        );
    }
}
