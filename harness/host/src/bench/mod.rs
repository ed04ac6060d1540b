//! `bpflab bench`: where a lesson run's time goes, measured, never asserted.
//!
//! Warm runs (everything cached) repeat and report the median with the spread; a cold
//! run uses an empty scratch cache (kernel download and unpacking, clang) and is
//! reported once. The machine may be noisy: read medians, and compare runs made side by
//! side, not absolute numbers from different days.

pub mod floor;
pub mod peers;

use std::time::Duration;

use serde::Serialize;

use crate::run::{self, RunRequest, RunResult};
use crate::vm::VmEnd;

/// One run's figures, in seconds (sizes in bytes, memory in KiB).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Kernel: resolve, download, unpack (0 when cached).
    pub kernel: f64,
    /// Agent build (cargo) and lesson compile (clang).
    pub build: f64,
    /// Writing the initramfs.
    pub initramfs: f64,
    /// QEMU start → agent ready.
    pub boot: f64,
    /// Guest kernel start → init, measured inside the guest.
    pub guest_boot_to_init: f64,
    /// Run start → first trace line.
    pub first_trace: f64,
    /// Run start → the lesson's result.
    pub result: f64,
    /// Agent ready → lesson done.
    pub lesson: f64,
    /// Lesson done → QEMU gone.
    pub shutdown: f64,
    /// Run start → end.
    pub total: f64,
    /// QEMU's peak resident memory.
    pub qemu_rss_kib: u64,
}

/// Figures of a benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Kernel booted.
    pub kernel: String,
    /// Arch.
    pub arch: String,
    /// KVM or TCG.
    pub accel: String,
    /// Kernel image size.
    pub kernel_bytes: u64,
    /// Initramfs size (agent, lessons' objects, plan).
    pub initramfs_bytes: u64,
    /// Warm runs.
    pub warm: Vec<Sample>,
    /// The cold run, if made.
    pub cold: Option<Sample>,
    /// The floor, one bare boot beside each warm run: QEMU start → gone, same image and
    /// flags, an init that powers off at once ([`floor`]). The pairs take turns: the
    /// first pair's run boots first, the second pair's bare boot, and so on.
    pub floor: Vec<f64>,
}

/// Measures one run of `request`.
pub fn sample(request: &RunRequest) -> anyhow::Result<(Sample, RunResult)> {
    let result = run::run(request, &mut |_| {})?;
    anyhow::ensure!(
        result.vm.end == VmEnd::Finished,
        "the VM did not finish: {:?}",
        result.vm.end
    );
    let t = &result.timings;
    let s = |d: Option<Duration>| d.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN);
    let before_qemu = t.kernel + t.build + t.initramfs;
    let sample = Sample {
        kernel: t.kernel.as_secs_f64(),
        build: t.build.as_secs_f64(),
        initramfs: t.initramfs.as_secs_f64(),
        boot: s(t.boot),
        guest_boot_to_init: s(t.guest_boot),
        first_trace: s(t.first_trace.map(|d| d + before_qemu)),
        result: s(t.boot.zip(t.lessons).map(|(b, l)| b + l + before_qemu)),
        lesson: s(t.lessons),
        shutdown: s(t.shutdown),
        total: t.total.as_secs_f64(),
        qemu_rss_kib: result.vm.qemu_max_rss_kib.unwrap_or(0),
    };
    Ok((sample, result))
}

/// A table row: its name and how to read it from a sample.
type Row = (&'static str, fn(&Sample) -> f64);

/// The table: one row per figure, median and spread of the warm runs, and the cold run.
pub fn table(report: &BenchReport) -> String {
    let rows: [Row; 10] = [
        ("kernel (fetch/unpack)", |s| s.kernel),
        ("build (cargo + clang)", |s| s.build),
        ("initramfs", |s| s.initramfs),
        ("boot (QEMU → agent)", |s| s.boot),
        ("  guest kernel → init", |s| s.guest_boot_to_init),
        ("first trace line (from start)", |s| s.first_trace),
        ("result (from start)", |s| s.result),
        ("lesson", |s| s.lesson),
        ("shutdown", |s| s.shutdown),
        ("exit (total)", |s| s.total),
    ];
    let mut out = format!(
        "lesson 1 on {} {} ({}), kernel image {} KiB, initramfs {} KiB, {} warm runs\n\n",
        report.kernel,
        report.arch,
        report.accel,
        report.kernel_bytes / 1024,
        report.initramfs_bytes / 1024,
        report.warm.len()
    );
    out.push_str("| phase | warm median | warm min–max | cold |\n|---|---|---|---|\n");
    for (name, get) in rows {
        let mut values: Vec<f64> = report.warm.iter().map(get).collect();
        values.sort_by(f64::total_cmp);
        let median = peers::median(values.clone()).unwrap_or(f64::NAN);
        let (min, max) = (
            values.first().copied().unwrap_or(f64::NAN),
            values.last().copied().unwrap_or(f64::NAN),
        );
        let cold = report
            .cold
            .as_ref()
            .map(|c| format!("{:.2}s", get(c)))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {name} | {median:.2}s | {min:.2}–{max:.2}s | {cold} |\n"
        ));
    }
    if !report.floor.is_empty() {
        out.push_str(&floor_rows(report));
    }
    let mut rss: Vec<u64> = report.warm.iter().map(|s| s.qemu_rss_kib).collect();
    rss.sort_unstable();
    out.push_str(&format!(
        "| QEMU peak RSS | {} MiB | | |\n",
        rss.get(rss.len() / 2).copied().unwrap_or(0) / 1024
    ));
    out
}

/// The floor's row, and bpflab's total over it ([`paired_ratio`]).
fn floor_rows(report: &BenchReport) -> String {
    let mut floor = report.floor.clone();
    floor.sort_by(f64::total_cmp);
    let median = peers::median(floor.clone()).unwrap_or(f64::NAN);
    let (min, max) = (floor[0], floor[floor.len() - 1]);
    let ratio = paired_ratio(report);
    format!(
        "| floor: bare boot, same image and flags | {median:.2}s | {min:.2}–{max:.2}s | |\n\
         | bpflab / floor (pairs in turns) | {ratio:.2} | | |\n"
    )
}

/// bpflab's total over the floor. Each warm run is divided by the bare boot made beside
/// it (the two share whatever the machine was doing), and each two pairs in a row, one
/// with the run first and one with the bare boot first, make a group whose ratio is the
/// geometric mean of theirs: on a machine that alternates between a faster and a slower
/// boot, the run's turn on the slow side and the floor's cancel out. The groups' median
/// is the figure, so one stalled boot moves it little. An odd last pair has no partner
/// and is left out, unless it is the only one.
fn paired_ratio(report: &BenchReport) -> f64 {
    let ratios: Vec<f64> = report
        .warm
        .iter()
        .zip(&report.floor)
        .map(|(w, f)| w.total / f)
        .collect();
    let groups: Vec<f64> = ratios
        .chunks_exact(2)
        .map(|turns| (turns[0] * turns[1]).sqrt())
        .collect();
    match groups.is_empty() {
        true => peers::median(ratios),
        false => peers::median(groups),
    }
    .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(total: f64) -> Sample {
        Sample {
            kernel: 0.0,
            build: 0.3,
            initramfs: 0.01,
            boot: 2.5,
            guest_boot_to_init: 1.5,
            first_trace: 3.4,
            result: 3.5,
            lesson: 0.9,
            shutdown: 0.1,
            total,
            qemu_rss_kib: 200 * 1024,
        }
    }

    /// Warm runs of these totals beside bare boots of these times, no cold run.
    fn warm_beside(totals: &[f64], floor: &[f64]) -> BenchReport {
        BenchReport {
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            accel: "TCG".into(),
            kernel_bytes: 0,
            initramfs_bytes: 0,
            warm: totals.iter().copied().map(sample).collect(),
            cold: None,
            floor: floor.to_vec(),
        }
    }

    #[test]
    fn the_table_reports_median_spread_and_cold() {
        let report = BenchReport {
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            accel: "TCG".into(),
            kernel_bytes: 8 << 20,
            initramfs_bytes: 1 << 20,
            warm: vec![sample(4.0), sample(3.0), sample(5.0)],
            cold: Some(sample(20.0)),
            floor: vec![2.0, 2.5, 2.0],
        };
        let t = table(&report);
        assert!(
            t.contains("| exit (total) | 4.00s | 3.00–5.00s | 20.00s |"),
            "{t}"
        );
        assert!(t.contains("| QEMU peak RSS | 200 MiB |"), "{t}");
        assert!(
            t.contains("| floor: bare boot, same image and flags | 2.00s | 2.00–2.50s | |"),
            "{t}"
        );
        // Pairs 4/2 and 3/2.5 make a group, sqrt(2 × 1.2); 5/2 has no partner.
        assert!(
            t.contains("| bpflab / floor (pairs in turns) | 1.55 |"),
            "{t}"
        );
        assert!(
            t.contains("kernel image 8192 KiB, initramfs 1024 KiB, 3 warm runs"),
            "{t}"
        );
    }

    #[test]
    fn pairs_in_turns_cancel_a_machine_that_alternates_fast_and_slow_boots() {
        // bpflab 1.15 times the floor; every other boot 9% slower (a slowdown that scales
        // both alike; a fixed delay instead cancels only approximately). Pair 1: the run
        // first, on a slow boot, the floor on a fast one; pair 2 the other way round.
        let (fast, slow) = (1.42, 1.55);
        let report = warm_beside(&[1.15 * slow, 1.15 * fast], &[fast, slow]);
        assert!((paired_ratio(&report) - 1.15).abs() < 1e-9);
        // Each pair alone says 1.26 or 1.05.
        assert!((1.15 * slow / fast - 1.26).abs() < 0.01);
    }

    #[test]
    fn one_stalled_boot_moves_the_ratio_little() {
        let report = |stalled: f64| warm_beside(&[1.1, 1.1, 1.1, 1.1, 1.1, stalled], &[1.0; 6]);
        assert!((paired_ratio(&report(1.1)) - 1.1).abs() < 1e-9);
        // A run twice as slow as the rest changes one group of three: the median stays.
        assert!((paired_ratio(&report(2.2)) - 1.1).abs() < 1e-9);
    }
}
