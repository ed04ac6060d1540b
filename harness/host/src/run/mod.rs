//! One lesson run, stage by stage:
//!
//! kernel (catalog → cache or download) → agent (cargo) → objects (clang) → initramfs →
//! QEMU → events → [`RunResult`].
//!
//! Each stage is a module of its own; this file only wires them and times them. The
//! caller sees everything live through a [`Progress`] callback and gets the whole story
//! back at the end.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bpflab_protocol::{Event, Fault, LessonPlan, Outcome, Plan, Referee, Ruling, Violation};

use crate::arch::Arch;
use crate::config::{self, Config};
use crate::kernel::catalog::Catalog;
use crate::kernel::{self, KernelImage, KernelSpec};
use crate::lessons::{self, Lesson};
use crate::vm::accel::{self, AccelChoice, AccelRequest};
use crate::vm::qemu::{Machine, QemuConfig};
use crate::vm::{self, VmEnd, VmLine, VmReport};
use crate::{image::agent, image::bpf, image::guest_tools, image::initramfs, interrupt, tools};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Lessons by number, each with the parts to run (empty: all).
    pub lessons: Vec<(u32, Vec<String>)>,
    /// Which kernel; `None` for the catalog's default.
    pub kernel: Option<KernelSpec>,
    /// Guest architecture.
    pub arch: Arch,
    /// KVM or TCG.
    pub accel: AccelRequest,
    /// Machine type; `None` for the arch's default.
    pub machine: Option<Machine>,
    /// Limit for the VM, from QEMU's start to its exit (none: no limit).
    pub timeout: Option<Duration>,
    /// After the lessons, an interactive shell in the guest on the user's terminal.
    pub shell: bool,
    /// Guest memory.
    pub memory_mib: u32,
    /// Full kernel boot log on the console.
    pub verbose_kernel: bool,
    /// Re-resolve the kernel from the archive even if one is cached.
    pub refresh_kernel: bool,
    /// A failure the guest should cause on purpose (tests of error handling).
    pub fault: Option<Fault>,
    /// QEMU CPU model, instead of the default.
    pub cpu: Option<String>,
    /// A cache directory for this run instead of the configured one (the benchmark's
    /// cold run uses an empty one).
    pub cache_dir: Option<std::path::PathBuf>,
}

impl RunRequest {
    /// Lesson `number` with the defaults a learner gets.
    pub fn lesson(number: u32) -> RunRequest {
        RunRequest {
            lessons: vec![(number, Vec::new())],
            kernel: None,
            arch: Arch::host().unwrap_or(Arch::X86_64),
            accel: AccelRequest::Auto,
            machine: None,
            timeout: Some(Duration::from_secs(180)),
            shell: false,
            memory_mib: 512,
            verbose_kernel: false,
            refresh_kernel: false,
            fault: None,
            cpu: None,
            cache_dir: None,
        }
    }
}

/// Something that happened, for live display.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A stage finished: name and what it produced.
    Stage(&'static str, String),
    /// The accelerator chosen.
    Accel(&'a AccelChoice),
    /// The VM is starting.
    Booting(&'a KernelImage),
    /// A line from the VM.
    Vm(&'a VmLine),
    /// An event the guest sent against the protocol; it does not count.
    Violation(&'a Violation),
}

/// Everything one lesson did in the guest.
#[derive(Debug, Clone)]
pub struct LessonResult {
    /// Lesson number.
    pub number: u32,
    /// Lesson name.
    pub name: String,
    /// How it ended; lessons the guest never finished are failed with the reason.
    pub outcome: Outcome,
    /// The lesson's events, in order (notes, output, trace lines).
    pub events: Vec<Event>,
}

/// Durations of the stages, for `--timings` and the benchmark.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    /// Finding, downloading and unpacking the kernel.
    pub kernel: Duration,
    /// Building the agent and compiling the lessons.
    pub build: Duration,
    /// Writing the initramfs.
    pub initramfs: Duration,
    /// QEMU start → agent ready.
    pub boot: Option<Duration>,
    /// Guest kernel start → init, as the guest measured it.
    pub guest_boot: Option<Duration>,
    /// QEMU start → first trace line.
    pub first_trace: Option<Duration>,
    /// Agent ready → last lesson's end.
    pub lessons: Option<Duration>,
    /// Last lesson's end → QEMU gone.
    pub shutdown: Option<Duration>,
    /// Process start (this run) → end.
    pub total: Duration,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The kernel booted.
    pub kernel: KernelImage,
    /// `uname -r` reported by the guest, if it got that far.
    pub guest_release: Option<String>,
    /// The accelerator used.
    pub accel: AccelChoice,
    /// One entry per requested lesson, in order.
    pub lessons: Vec<LessonResult>,
    /// How the VM ended.
    pub vm: VmReport,
    /// Where the time went.
    pub timings: Timings,
    /// Size of the initramfs the guest booted with.
    pub initramfs_bytes: u64,
    /// An error the agent reported outside any lesson.
    pub agent_error: Option<String>,
    /// Events the guest sent against the protocol (they did not count).
    pub violations: Vec<Violation>,
}

impl RunResult {
    /// Whether every lesson passed, the VM ended normally and the guest kept to the
    /// protocol.
    pub fn all_passed(&self) -> bool {
        self.vm.end == VmEnd::Finished
            && self.violations.is_empty()
            && self
                .lessons
                .iter()
                .all(|l| matches!(l.outcome, Outcome::Passed(_)))
    }
}

/// Runs the request, reporting progress as it goes.
pub fn run(request: &RunRequest, progress: &mut dyn FnMut(Progress)) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let root = config::source_root();
    let mut config = Config::load()?;
    if let Some(dir) = &request.cache_dir {
        config.cache_dir = dir.clone();
    }
    let catalog = Catalog::load(&root.join("images/catalog.toml"))?;
    let all_lessons = lessons::discover(&root.join("lessons"))?;
    let selected: Vec<(&Lesson, Vec<String>)> = request
        .lessons
        .iter()
        .map(|(n, parts)| lessons::find(&all_lessons, *n).map(|l| (l, parts.clone())))
        .collect::<anyhow::Result<_>>()?;
    for (lesson, parts) in &selected {
        if let Some(bad) = parts.iter().find(|p| !lesson.parts.contains(p)) {
            anyhow::bail!(
                "lesson {} has no part `{bad}`; its parts are: {}",
                lesson.number,
                if lesson.parts.is_empty() {
                    "none (it has a single part)".to_string()
                } else {
                    lesson.parts.join(", ")
                }
            );
        }
    }
    let qemu = tools::require(request.arch.qemu_binary(), request.arch.qemu_package())?;

    // Stage: kernel.
    let t = Instant::now();
    let spec = request
        .kernel
        .clone()
        .unwrap_or_else(|| KernelSpec::Series(catalog.default.clone()));
    let kernel = kernel::obtain(
        &spec,
        request.arch,
        &catalog,
        &config,
        request.refresh_kernel,
    )?;
    timings.kernel = t.elapsed();
    progress(Progress::Stage("kernel", kernel.origin.clone()));
    if let Some(config_path) = &kernel.config {
        let config_text = std::fs::read_to_string(config_path)
            .with_context(|| format!("reading the kernel's config {}", config_path.display()))?;
        let lacking = crate::kernel::check::missing(&config_text, request.arch);
        if !lacking.is_empty() {
            anyhow::bail!(
                "kernel {} lacks what the lessons need: {}. Pick another kernel (`bpflab kernels`) \
                 or build one that has them (`bpflab kernels build <series>`)",
                kernel.origin,
                lacking.join(", ")
            );
        }
    }
    interrupt::check()?;

    // Stage: build the agent and the lessons' objects.
    let t = Instant::now();
    let agent = agent::build_agent(&root, request.arch)?;
    interrupt::check()?;
    let work = config::work_dir();
    let mut objects = Vec::new();
    for (lesson, _) in &selected {
        objects.push(bpf::compile_lesson(
            lesson,
            request.arch,
            &work.join("bpf"),
        )?);
    }
    timings.build = t.elapsed();
    progress(Progress::Stage(
        "build",
        format!("agent and {} lesson(s) ready", selected.len()),
    ));
    interrupt::check()?;

    // Stage: initramfs, in a temporary directory that also holds the channel FIFOs.
    let t = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("bpflab-vm-")
        .tempdir()
        .context("creating a temporary directory for the VM")?;
    let accel = accel::choose(request.accel, request.arch)?;
    progress(Progress::Accel(&accel));
    let machine = request
        .machine
        .unwrap_or_else(|| Machine::default_for(request.arch));
    let qemu_config = QemuConfig {
        arch: request.arch,
        accel: accel.accel,
        machine,
        kernel: kernel.image.clone(),
        initrd: scratch.path().join("initramfs.cpio"),
        memory_mib: request.memory_mib,
        channel_fifo: scratch.path().join("channel"),
        tsc_khz: accel::host_cpu_khz(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()),
        verbose_kernel: request.verbose_kernel,
        cpu: request.cpu.clone(),
    };
    let plan = Plan {
        lessons: selected
            .iter()
            .map(|(l, parts)| LessonPlan {
                number: l.number,
                name: l.name.clone(),
                dir: l.dir_name(),
                parts: parts.clone(),
            })
            .collect(),
        channel: qemu_config.channel().1.to_string(),
        shell: request.shell,
        fault: request.fault,
    };
    let dir_names: Vec<String> = selected.iter().map(|(l, _)| l.dir_name()).collect();
    let image_lessons: Vec<initramfs::LessonObjects> = dir_names
        .iter()
        .zip(&objects)
        .map(|(dir, objs)| {
            (
                dir.as_str(),
                objs.iter()
                    .map(|o| (o.name.as_str(), o.path.as_path()))
                    .collect(),
            )
        })
        .collect();
    let busybox = match request.shell {
        true => Some(guest_tools::busybox(&config, &catalog, request.arch)?),
        false => None,
    };
    let image = initramfs::build(&agent, &plan, &image_lessons, busybox.as_deref())?;
    std::fs::write(&qemu_config.initrd, &image)
        .with_context(|| format!("writing {}", qemu_config.initrd.display()))?;
    timings.initramfs = t.elapsed();
    let initramfs_bytes = image.len() as u64;
    progress(Progress::Stage(
        "initramfs",
        format!("{} KiB", image.len() / 1024),
    ));

    // Stage: boot and run.
    progress(Progress::Booting(&kernel));
    let vm_started = Instant::now();
    let mut collector = Collector::new(&selected);
    let options = vm::VmOptions {
        timeout: deadline_timeout(request.timeout),
        interactive: request.shell,
    };
    let vm = vm::run(&qemu, &qemu_config, options, |line| {
        let rulings = collector.referee_line(line);
        collector.apply(rulings, vm_started.elapsed(), &mut timings, progress);
    })?;
    // A lesson result held back by the referee is final now that the guest is gone.
    let rulings = collector.referee.finish().into_iter().map(as_line);
    collector.apply(rulings, vm.wall, &mut timings, progress);
    if let (Some(done), true) = (collector.last_end, vm.end == VmEnd::Finished) {
        timings.shutdown = Some(vm.wall.saturating_sub(done));
    }
    timings.total = started.elapsed();
    if vm.end == VmEnd::Interrupted {
        anyhow::bail!(interrupt::Interrupted);
    }
    let lessons = collector.finish(&vm);
    Ok(RunResult {
        initramfs_bytes,
        kernel,
        guest_release: collector.release.take(),
        accel,
        lessons,
        vm,
        timings,
        agent_error: collector.agent_error.take(),
        violations: std::mem::take(&mut collector.violations),
    })
}

/// An accepted event as the line it came in, or what was wrong with it.
fn as_line(ruling: Ruling) -> Result<VmLine, Violation> {
    match ruling {
        Ruling::Accept(event) => Ok(VmLine::Event(event)),
        Ruling::Reject(violation) => Err(violation),
    }
}

/// Sorts the guest's events into per-lesson results as they arrive, counting only what
/// the referee accepts.
struct Collector {
    referee: Referee,
    violations: Vec<Violation>,
    results: Vec<LessonResult>,
    release: Option<String>,
    agent_error: Option<String>,
    ready_at: Option<Duration>,
    last_end: Option<Duration>,
}

impl Collector {
    fn new(selected: &[(&Lesson, Vec<String>)]) -> Collector {
        Collector {
            referee: Referee::new(selected.iter().map(|(l, _)| l.number)),
            violations: Vec::new(),
            results: selected
                .iter()
                .map(|(l, _)| LessonResult {
                    number: l.number,
                    name: l.name.clone(),
                    outcome: Outcome::Failed(String::new()),
                    events: Vec::new(),
                })
                .collect(),
            release: None,
            agent_error: None,
            ready_at: None,
            last_end: None,
        }
    }

    /// What the referee makes of a line from the VM (console lines are not its business).
    fn referee_line(&mut self, line: VmLine) -> Vec<Result<VmLine, Violation>> {
        match line {
            VmLine::Console(_) => vec![Ok(line)],
            VmLine::Event(event) => self.referee.take(event).into_iter().map(as_line).collect(),
        }
    }

    /// Takes what was decided into the results, and shows it.
    fn apply(
        &mut self,
        rulings: impl IntoIterator<Item = Result<VmLine, Violation>>,
        at: Duration,
        timings: &mut Timings,
        progress: &mut dyn FnMut(Progress),
    ) {
        for ruling in rulings {
            match ruling {
                Ok(line) => {
                    self.take(&line, at, timings);
                    progress(Progress::Vm(&line));
                }
                Err(violation) => {
                    self.reject(&violation);
                    progress(Progress::Violation(&violation));
                }
            }
        }
    }

    /// A lesson whose result is contested has failed, whatever it reported.
    fn reject(&mut self, violation: &Violation) {
        let contested = violation.contested_lesson();
        if let Some(r) = self
            .results
            .iter_mut()
            .find(|r| Some(r.number) == contested)
        {
            if !matches!(r.outcome, Outcome::Failed(_)) {
                r.outcome = Outcome::Failed(violation.to_string());
            }
        }
        self.violations.push(violation.clone());
    }

    fn take(&mut self, line: &VmLine, at: Duration, timings: &mut Timings) {
        let VmLine::Event(event) = line else { return };
        match event {
            Event::Ready {
                kernel, boot_ms, ..
            } => {
                self.release = Some(kernel.clone());
                self.ready_at = Some(at);
                timings.boot = Some(at);
                timings.guest_boot = Some(Duration::from_millis(*boot_ms));
            }
            Event::AgentError { message } => self.agent_error = Some(message.clone()),
            Event::LessonEnd {
                lesson, outcome, ..
            } => {
                self.last_end = Some(at);
                if let Some(ready) = self.ready_at {
                    timings.lessons = Some(at.saturating_sub(ready));
                }
                if let Some(r) = self.results.iter_mut().find(|r| r.number == *lesson) {
                    r.outcome = outcome.clone();
                    r.events.push(event.clone());
                }
            }
            Event::Trace { lesson, .. }
            | Event::Note { lesson, .. }
            | Event::Output { lesson, .. }
            | Event::LessonStart { lesson } => {
                if matches!(event, Event::Trace { .. }) && timings.first_trace.is_none() {
                    timings.first_trace = Some(at);
                }
                if let Some(r) = self.results.iter_mut().find(|r| r.number == *lesson) {
                    r.events.push(event.clone());
                }
            }
            Event::ShellStart | Event::Done => {}
        }
    }

    /// Lessons the guest never finished get the reason the VM gave.
    fn finish(&mut self, vm: &VmReport) -> Vec<LessonResult> {
        let why = match &vm.end {
            VmEnd::Finished => match &self.agent_error {
                Some(e) => format!("the guest agent failed: {e}"),
                None => "the guest finished without reporting this lesson".into(),
            },
            VmEnd::KernelPanic => "the guest kernel panicked".into(),
            VmEnd::TimedOut(t) => format!("the guest did not finish within {}s", t.as_secs()),
            VmEnd::ExitedEarly(why) => why.clone(),
            VmEnd::Interrupted => "interrupted".into(),
        };
        for r in &mut self.results {
            if !r
                .events
                .iter()
                .any(|e| matches!(e, Event::LessonEnd { .. }))
            {
                r.outcome = Outcome::Failed(format!("no result: {why}"));
            }
        }
        std::mem::take(&mut self.results)
    }
}

/// The longest timeout kept as a deadline; beyond it the VM gets none (which the VM takes
/// as a year). No run lasts that long, and `started + timeout` would overflow the clock
/// near `u64::MAX` seconds.
const LONGEST_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

fn deadline_timeout(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|t| *t <= LONGEST_DEADLINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_too_long_to_be_a_deadline_is_none() {
        assert_eq!(deadline_timeout(Some(Duration::from_secs(u64::MAX))), None);
        assert_eq!(deadline_timeout(Some(Duration::MAX)), None);
        let usual = Some(Duration::from_secs(180));
        assert_eq!(deadline_timeout(usual), usual);
        assert_eq!(deadline_timeout(None), None);
    }
}
