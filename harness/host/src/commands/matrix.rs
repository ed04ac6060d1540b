//! `bpflab matrix` and `bpflab merge-reports`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::arch::Arch;
use crate::cli::args::MatrixArgs;
use crate::config::{self};
use crate::kernel::catalog::Catalog;
use crate::{lessons, report::matrix, term};

/// Runs every lesson on every kernel and arch asked for, and writes the report.
pub fn run(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load_shipped()?;
    let kernels = match args.kernels.is_empty() {
        true => catalog
            .series_names()
            .into_iter()
            .map(String::from)
            .collect(),
        false => args.kernels,
    };
    let arches = match args.arch.is_empty() {
        true => Arch::ALL.to_vec(),
        false => args.arch,
    };
    let all = lessons::discover(&config::source_root().join("lessons"))?;
    // By default every lesson and solution, and the mistakes the kernel must refuse.
    let lessons: Vec<u32> = match args.lessons.is_empty() {
        true => all
            .iter()
            .filter(|l| l.kind.passes() || !l.rejected_for.is_empty())
            .map(|l| l.number)
            .collect(),
        false => {
            for n in &args.lessons {
                lessons::find(&all, *n)?;
            }
            args.lessons
        }
    };
    let jobs = args.jobs.unwrap_or_else(config::cpus);
    let mistakes = all
        .iter()
        .filter(|l| lessons.contains(&l.number) && !l.rejected_for.is_empty())
        .map(|l| (l.number, l.rejected_for.clone()))
        .collect();
    let request = matrix::MatrixRequest {
        kernels,
        arches,
        lessons,
        mistakes,
        jobs,
        accel: args.accel,
        timeout: Duration::from_secs(args.timeout),
    };
    let cells = request.kernels.len() * request.arches.len();
    term::status(format!(
        "matrix: lessons {:?} on {} kernel(s) × {} arch(es), {jobs} VM(s) at a time",
        request.lessons,
        request.kernels.len(),
        request.arches.len()
    ));
    let bar = indicatif::ProgressBar::new(cells as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} cells {elapsed}")
            .expect("valid template"),
    );
    let started = std::time::Instant::now();
    let report = matrix::run(&request, &|cell| {
        let summary: Vec<String> = match cell.stopped() {
            Some((word, why)) => vec![format!("{word}: {}", why.lines().next().unwrap_or(""))],
            None => cell
                .lessons
                .iter()
                .map(|l| format!("{} {}", l.lesson, l.outcome.word()))
                .collect(),
        };
        let line = format!(
            "  {:<7} {:<7} {:<28} {}  ({:.1}s)",
            cell.kernel,
            cell.arch,
            cell.release.as_deref().unwrap_or("-"),
            summary.join(", "),
            cell.wall_s
        );
        // A hidden bar (no terminal) swallows println: logs still get the line.
        match bar.is_hidden() {
            true => eprintln!("{line}"),
            false => bar.println(line),
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    crate::interrupt::check()?;
    println!("\n{}", report.markdown());
    report.write(&args.report_dir)?;
    term::status(format!(
        "matrix done in {:.0}s; report: {}/matrix.md and matrix.json",
        started.elapsed().as_secs_f64(),
        args.report_dir.display()
    ));
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Merges the matrix reports of CI jobs into one, failing when cells are missing.
pub fn merge(
    paths: &[std::path::PathBuf],
    report_dir: &std::path::Path,
    expect: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for path in paths {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: matrix::Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a bpflab matrix report", path.display()))?;
        reports.push(report);
    }
    let merged = matrix::Report::merge(reports);
    println!("{}", merged.markdown());
    merged.write(report_dir)?;
    // The table is written either way: it shows what did arrive.
    let gaps = merged.gaps(expect);
    anyhow::ensure!(
        gaps.is_empty(),
        "the merged report is incomplete:\n  {}",
        gaps.join("\n  ")
    );
    Ok(if merged.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
