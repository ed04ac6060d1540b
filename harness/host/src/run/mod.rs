//! One lesson run, stage by stage:
//!
//! kernel (catalog → cache or download), beside agent (cargo) → objects (clang); then
//! initramfs → QEMU → events → [`RunResult`].
//!
//! Each stage is a module of its own; this file only wires them and times them. The
//! caller sees everything live through a [`Progress`] callback and gets the whole story
//! back at the end.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bpflab_protocol::{Event, Outcome, Violation};

use crate::config::{self, Config};
use crate::kernel::catalog::Catalog;
use crate::kernel::KernelImage;
use crate::lessons::{self};
use crate::vm::accel::{self, AccelChoice};
use crate::vm::{self, VmEnd, VmLine, VmReport};
use crate::{image::initramfs, interrupt};

mod collector;
mod request;
mod stages;

use collector::{as_line, Collector};
pub use request::{RunRequest, DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT};

/// A stage of a run, as [`Progress`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The kernel is there (cached, downloaded or built).
    Kernel,
    /// The agent and the lessons' objects are built.
    Build,
    /// The initramfs is written.
    Initramfs,
}

/// Something that happened, for live display.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A stage finished, and what it produced.
    Stage(Stage, String),
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
    /// Finding QEMU, clang and the headers (the host's, or unpacked into the cache).
    pub tools: Duration,
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
    /// The features the guest found the kernel has (of every one a lesson can need), if
    /// it got that far.
    pub guest_features: Option<Vec<bpflab_protocol::Feature>>,
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
    let config = config_for(request)?;
    let catalog = Catalog::load_shipped()?;
    let all_lessons = lessons::discover(&root.join("lessons"))?;
    let selected = stages::select(request, &all_lessons)?;
    let t = Instant::now();
    let (qemu, toolchain) = stages::tools(&config, request.arch)?;
    timings.tools = t.elapsed();

    let (kernel, build) =
        kernel_beside_build(request, &catalog, &config, &root, &toolchain, &selected);
    let (kernel, kernel_time) = kernel?;
    timings.kernel = kernel_time;
    progress(Progress::Stage(Stage::Kernel, kernel.origin.clone()));
    interrupt::check()?;
    let (
        stages::BuildStage {
            built,
            booted,
            compiled_out,
        },
        build_time,
    ) = build?;
    timings.build = build_time;
    let summary = build_summary(&booted, &compiled_out);
    progress(Progress::Stage(Stage::Build, summary));
    interrupt::check()?;

    // The initramfs goes in a temporary directory that also holds the channel FIFOs.
    let t = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("bpflab-vm-")
        .tempdir()
        .context("creating a temporary directory for the VM")?;
    let accel = accel::choose(request.accel, request.arch)?;
    progress(Progress::Accel(&accel));
    if booted.is_empty() && !request.shell {
        // Every outcome is known already (mistakes clang refused): nothing to boot for.
        timings.total = started.elapsed();
        let lessons = in_request_order(&selected, Vec::new(), compiled_out);
        return Ok(without_vm(kernel, accel, lessons, timings));
    }
    let qemu_config = stages::qemu_config(request, &accel, &kernel, scratch.path());
    let (busybox, modules) = stages::extra_files(request, &config, &catalog, &kernel, &booted)?;
    let initramfs_bytes = stages::initramfs(
        request,
        &booted,
        &built,
        &qemu_config,
        initramfs::Extras {
            busybox: busybox.as_deref(),
            kernel_btf: kernel.btf.as_deref(),
            files: &stages::guest_files(request, &config, &booted)?,
            modules: &modules,
        },
    )?;
    timings.initramfs = t.elapsed();
    progress(Progress::Stage(
        Stage::Initramfs,
        format!("{} KiB", initramfs_bytes / 1024),
    ));

    progress(Progress::Booting(&kernel));
    let vm_started = Instant::now();
    let mut collector = Collector::new(&booted);
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
    let lessons = in_request_order(&selected, collector.finish(&vm), compiled_out);
    Ok(RunResult {
        initramfs_bytes,
        kernel,
        guest_release: collector.release.take(),
        guest_features: collector.features.take(),
        accel,
        lessons,
        vm,
        timings,
        agent_error: collector.agent_error.take(),
        violations: std::mem::take(&mut collector.violations),
    })
}

/// The kernel (a download on a first run) and the build (cargo and clang), each with how
/// long it took: they need nothing of each other, so they overlap, and a first run waits
/// for the longer only.
type Timed<T> = anyhow::Result<(T, Duration)>;
fn kernel_beside_build<'a>(
    request: &RunRequest,
    catalog: &Catalog,
    config: &Config,
    root: &std::path::Path,
    toolchain: &crate::image::bpf::Toolchain,
    selected: &stages::Selected<'a>,
) -> (Timed<KernelImage>, Timed<stages::BuildStage<'a>>) {
    std::thread::scope(|s| {
        let kernel = s.spawn(|| {
            let t = Instant::now();
            stages::kernel(request, catalog, config).map(|k| (k, t.elapsed()))
        });
        let t = Instant::now();
        let build = stages::build(root, toolchain, request.arch, selected);
        let build = build.map(|b| (b, t.elapsed()));
        let kernel = kernel
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("obtaining the kernel panicked")));
        (kernel, build)
    })
}

/// QEMU's configuration for `request` on `kernel`, with its files in `scratch`: what
/// [`run`] boots with (the benchmark's floor boots the same).
pub fn qemu_config(
    request: &RunRequest,
    accel: &AccelChoice,
    kernel: &KernelImage,
    scratch: &std::path::Path,
) -> crate::vm::qemu::QemuConfig {
    stages::qemu_config(request, accel, kernel, scratch)
}

/// The user's configuration, with the request's cache directory if it names one.
fn config_for(request: &RunRequest) -> anyhow::Result<Config> {
    let mut config = Config::load()?;
    if let Some(dir) = &request.cache_dir {
        config.cache_dir = dir.clone();
    }
    Ok(config)
}

/// The result of a run that needed no VM: every lesson's outcome was known before boot.
fn without_vm(
    kernel: KernelImage,
    accel: AccelChoice,
    lessons: Vec<LessonResult>,
    timings: Timings,
) -> RunResult {
    RunResult {
        initramfs_bytes: 0,
        kernel,
        guest_release: None,
        guest_features: None,
        accel,
        lessons,
        vm: VmReport::not_needed(),
        timings,
        agent_error: None,
        violations: Vec::new(),
    }
}

/// What the build stage produced, for the live view.
fn build_summary(booted: &stages::Selected<'_>, compiled_out: &[(u32, Outcome)]) -> String {
    let mut summary = format!("agent and {} lesson(s) ready", booted.len());
    for (number, outcome) in compiled_out {
        if let Outcome::Failed(_) = outcome {
            summary.push_str(&format!(
                "; clang refused lesson {number}, which does not boot"
            ));
        }
    }
    summary
}

/// The guest's results and the build stage's outcomes (mistakes clang refused), in the
/// order the request named the lessons.
fn in_request_order(
    selected: &stages::Selected<'_>,
    booted: Vec<LessonResult>,
    mut compiled_out: Vec<(u32, Outcome)>,
) -> Vec<LessonResult> {
    let mut booted = booted.into_iter();
    selected
        .iter()
        .filter_map(|(lesson, _)| {
            match compiled_out.iter().position(|(n, _)| *n == lesson.number) {
                Some(i) => Some(LessonResult {
                    number: lesson.number,
                    name: lesson.name.clone(),
                    outcome: compiled_out.swap_remove(i).1,
                    events: Vec::new(),
                }),
                None => booted.next(),
            }
        })
        .collect()
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
        let usual = Some(DEFAULT_TIMEOUT);
        assert_eq!(deadline_timeout(usual), usual);
        assert_eq!(deadline_timeout(None), None);
    }
}
