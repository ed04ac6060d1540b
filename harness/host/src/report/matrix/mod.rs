//! The kernel matrix: every selected lesson on every selected kernel and arch.
//!
//! One VM boot per (kernel, arch) cell runs all the lessons, so the boot is paid once.
//! Cells run in parallel, `jobs` at a time. A kernel that cannot be had on this machine
//! (no mirror of its archive configured, no package for the arch, no source reachable)
//! makes its cell "unavailable", with the reason, which fails nothing; a cell that could
//! not run for any other reason (a refused download, a guest that never came up) is an
//! error, which fails the matrix. No cell is ever dropped from the report.

mod markdown;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bpflab_protocol::{Event, Feature, Outcome};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::guest_text::visible_lines;
use crate::kernel::KernelSpec;
use crate::run::{self, RunRequest};
use crate::vm::accel::AccelRequest;
use crate::vm::VmEnd;

/// What to run.
#[derive(Debug, Clone)]
pub struct MatrixRequest {
    /// Kernel series (catalog names) or image paths.
    pub kernels: Vec<String>,
    /// Architectures.
    pub arches: Vec<Arch>,
    /// Lesson numbers.
    pub lessons: Vec<u32>,
    /// The mistakes among them, with what the kernel's refusal must say
    /// ([`crate::lessons::refused_for`]): each is judged by that, not by passing.
    pub mistakes: std::collections::BTreeMap<u32, Vec<String>>,
    /// Cells run at the same time.
    pub jobs: usize,
    /// KVM or TCG.
    pub accel: AccelRequest,
    /// Per-cell VM timeout.
    pub timeout: Duration,
}

/// The report of a matrix run: what `--report-dir` gets as JSON, and what shards merge.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// One entry per (kernel, arch), in the order requested.
    pub cells: Vec<Cell>,
}

/// One (kernel, arch) cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// Kernel series or path as requested.
    pub kernel: String,
    /// Architecture name.
    pub arch: String,
    /// What was booted (package and version), when it could be obtained.
    pub origin: Option<String>,
    /// `uname -r` of the guest.
    pub release: Option<String>,
    /// Why the kernel cannot be had on this machine (not a failure).
    pub unavailable: Option<String>,
    /// Why the cell could not run otherwise: a failure.
    #[serde(default)]
    pub error: Option<String>,
    /// Lesson results, in order.
    pub lessons: Vec<CellLesson>,
    /// The kernel features the guest found (of every one a lesson can need), if it came up.
    #[serde(default)]
    pub features: Option<Vec<Feature>>,
    /// QEMU start → agent ready, seconds.
    pub boot_s: Option<f64>,
    /// Agent ready → last lesson done, seconds.
    pub run_s: Option<f64>,
    /// The whole cell, including fetching and building, seconds.
    pub wall_s: f64,
}

/// One lesson in a cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellLesson {
    /// Lesson number.
    pub lesson: u32,
    /// How it ended. For a mistake: passed when the kernel refused it for its reason.
    pub outcome: Outcome,
    /// A mistake, whose pass is a refusal.
    #[serde(default)]
    pub mistake: bool,
    /// Seconds the lesson took inside the guest, when it ended there: what makes one
    /// cell slower than another, lesson by lesson (JSON only; the table has the totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_s: Option<f64>,
}

impl Report {
    /// Whether no lesson failed and every cell could run that had a kernel. Unsupported
    /// lessons and unavailable kernels (each with a reason) do not fail the matrix.
    pub fn ok(&self) -> bool {
        self.cells.iter().all(|c| {
            c.error.is_none()
                && c.lessons
                    .iter()
                    .all(|l| !matches!(l.outcome, Outcome::Failed(_)))
        })
    }

    /// Combines shard reports (from CI jobs) into one.
    pub fn merge(reports: impl IntoIterator<Item = Report>) -> Report {
        let mut cells: Vec<Cell> = reports.into_iter().flat_map(|r| r.cells).collect();
        cells.sort_by(|a, b| {
            (&a.arch, series_key(&a.kernel)).cmp(&(&b.arch, series_key(&b.kernel)))
        });
        Report { cells }
    }

    /// Why a merged report cannot stand for the whole matrix: no cells at all, a cell
    /// with neither a result nor a reason, or fewer distinct cells than `expected` (CI
    /// only warns when a shard's upload is missing). Empty when it can.
    pub fn gaps(&self, expected: Option<usize>) -> Vec<String> {
        let mut gaps = Vec::new();
        if self.cells.is_empty() {
            gaps.push("the reports hold no cells at all: did the matrix jobs run?".to_string());
        }
        for c in &self.cells {
            if c.lessons.is_empty() && c.unavailable.is_none() && c.error.is_none() {
                gaps.push(format!(
                    "{} {}: no lesson results and no reason; its run stopped before any \
                     lesson ended (see that job's log)",
                    c.kernel, c.arch
                ));
            }
        }
        let distinct: std::collections::BTreeSet<(&str, &str)> = self
            .cells
            .iter()
            .map(|c| (c.kernel.as_str(), c.arch.as_str()))
            .collect();
        if let Some(expected) = expected.filter(|n| distinct.len() < *n) {
            gaps.push(format!(
                "{} of the {expected} expected cells arrived: the missing ones did not \
                 upload a report (see their jobs' logs)",
                distinct.len()
            ));
        }
        gaps
    }

    /// The lesson numbers that appear in any cell, in order.
    fn lesson_numbers(&self) -> Vec<u32> {
        let mut numbers: Vec<u32> = self
            .cells
            .iter()
            .flat_map(|c| c.lessons.iter().map(|l| l.lesson))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }

    /// Writes `matrix.json`, `matrix.md` and `features.md` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("matrix.json"), serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", dir.join("matrix.json").display()))?;
        std::fs::write(dir.join("matrix.md"), self.markdown())
            .with_context(|| format!("writing {}", dir.join("matrix.md").display()))?;
        std::fs::write(dir.join("features.md"), self.features_markdown())
            .with_context(|| format!("writing {}", dir.join("features.md").display()))?;
        Ok(())
    }
}

impl Cell {
    /// Why the cell ran no lesson, as a word for the table and the reason.
    pub fn stopped(&self) -> Option<(&'static str, &str)> {
        match (&self.error, &self.unavailable) {
            (Some(why), _) => Some(("error", why)),
            (None, Some(why)) => Some(("unavailable", why)),
            (None, None) => None,
        }
    }
}

/// Runs the matrix; `on_cell` sees each cell as it finishes (for progress output).
pub fn run(request: &MatrixRequest, on_cell: &(dyn Fn(&Cell) + Sync)) -> Report {
    let cells: Vec<(String, Arch)> = request
        .arches
        .iter()
        .flat_map(|arch| request.kernels.iter().map(move |k| (k.clone(), *arch)))
        .collect();
    let results: Mutex<Vec<Option<Cell>>> = Mutex::new(vec![None; cells.len()]);
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..request.jobs.max(1).min(cells.len().max(1)) {
            scope.spawn(|| loop {
                let index = {
                    let mut next = next.lock().expect("not poisoned");
                    let index = *next;
                    *next += 1;
                    index
                };
                let Some((kernel, arch)) = cells.get(index) else {
                    break;
                };
                if crate::interrupt::interrupted() {
                    break;
                }
                let cell = run_cell(request, kernel, *arch);
                on_cell(&cell);
                results.lock().expect("not poisoned")[index] = Some(cell);
            });
        }
    });
    Report {
        cells: results
            .into_inner()
            .expect("not poisoned")
            .into_iter()
            .flatten()
            .collect(),
    }
}

fn run_cell(request: &MatrixRequest, kernel: &str, arch: Arch) -> Cell {
    let started = Instant::now();
    let mut run_request = RunRequest::lesson(1);
    run_request.lessons = request.lessons.iter().map(|n| (*n, Vec::new())).collect();
    run_request.kernel = Some(KernelSpec::parse(kernel));
    run_request.arch = arch;
    run_request.accel = request.accel;
    run_request.timeout = Some(request.timeout);
    run_request.probe_features = true;
    let mut cell = Cell {
        kernel: kernel.to_string(),
        arch: arch.name().to_string(),
        origin: None,
        release: None,
        unavailable: None,
        error: None,
        lessons: Vec::new(),
        features: None,
        boot_s: None,
        run_s: None,
        wall_s: 0.0,
    };
    match run::run(&run_request, &mut |_| {}) {
        Ok(result) => {
            cell.origin = Some(result.kernel.origin.clone());
            // The report is read on terminals and as Markdown: guest text in it is shown,
            // never obeyed.
            cell.release = result.guest_release.as_deref().map(visible_lines);
            cell.features = result.guest_features.clone();
            cell.boot_s = result.timings.boot.map(|d| d.as_secs_f64());
            cell.run_s = result.timings.lessons.map(|d| d.as_secs_f64());
            if result.vm.end != VmEnd::Finished && result.guest_release.is_none() {
                let tail = result
                    .vm
                    .console_tail
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|line| visible_lines(line))
                    .collect::<Vec<_>>()
                    .join(" / ");
                cell.error = Some(format!(
                    "the guest never came up ({:?}): {tail}",
                    result.vm.end
                ));
            }
            cell.lessons = result
                .lessons
                .into_iter()
                .map(|l| CellLesson {
                    guest_s: guest_seconds(&l.events),
                    ..judged(request, l.number, visible_outcome(l.outcome))
                })
                .collect();
        }
        Err(e) if crate::kernel::is_unavailable(&e) => cell.unavailable = Some(format!("{e:#}")),
        Err(e) => cell.error = Some(format!("{e:#}")),
    }
    cell.wall_s = started.elapsed().as_secs_f64();
    cell
}

/// How long a lesson took inside the guest, from its end event (none when the guest
/// never finished it).
fn guest_seconds(events: &[Event]) -> Option<f64> {
    events.iter().find_map(|event| match event {
        Event::LessonEnd { elapsed_ms, .. } => Some(*elapsed_ms as f64 / 1000.0),
        _ => None,
    })
}

/// A lesson's cell entry: a mistake judged by the refusal it teaches (a refusal for its
/// reason passes, an acceptance or another refusal fails), any other lesson as it ended.
fn judged(request: &MatrixRequest, lesson: u32, outcome: Outcome) -> CellLesson {
    let Some(rejected_for) = request.mistakes.get(&lesson) else {
        return CellLesson {
            lesson,
            outcome,
            mistake: false,
            guest_s: None,
        };
    };
    let outcome = match (
        &outcome,
        crate::lessons::refused_for(rejected_for, &outcome),
    ) {
        // A kernel without what the mistake needs cannot refuse it: unsupported stays.
        (Outcome::Unsupported(_), _) => outcome,
        (_, Ok(words)) => Outcome::Passed(format!("refused, as it should be: \"{words}\"")),
        (_, Err(why)) => Outcome::Failed(why),
    };
    CellLesson {
        lesson,
        outcome,
        mistake: true,
        guest_s: None,
    }
}

/// `outcome` with its reason (guest text) made visible.
fn visible_outcome(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Passed(r) => Outcome::Passed(visible_lines(&r)),
        Outcome::Failed(r) => Outcome::Failed(visible_lines(&r)),
        Outcome::Unsupported(r) => Outcome::Unsupported(visible_lines(&r)),
    }
}

/// Orders series numerically (5.10 after 5.4, 7.3-rc after 7.2); paths last.
fn series_key(name: &str) -> (Vec<u32>, String) {
    let numbers = name
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect();
    (numbers, name.to_string())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests;
