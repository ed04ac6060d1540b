//! The command line: what each command accepts, and what it does with it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use bpflab_protocol::Fault;

use crate::arch::Arch;
use crate::config::{self, Config};
use crate::kernel::catalog::Catalog;
use crate::kernel::{self, KernelSpec};
use crate::report::view;
use crate::run::{self, RunRequest};
use crate::vm::accel::AccelRequest;
use crate::vm::qemu::Machine;
use crate::{lessons, report::matrix, term};

/// Learn and test eBPF by running it: each lesson boots a small Linux kernel in QEMU,
/// loads its eBPF program there and shows you the output live — no root, no risk to
/// your own kernel, any kernel version.
#[derive(Debug, Parser)]
#[command(name = "bpflab", version, propagate_version = true)]
#[command(
    after_help = "Start with `bpflab lesson 1` (from the source tree: `cargo run -- lesson 1`)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run lesson N in a fresh VM and show its output as it happens.
    #[command(after_help = "\
Examples:
  bpflab lesson 1                      the default kernel, this machine's arch
  bpflab lesson 1 --kernel 5.10        another kernel series (see `bpflab kernels`)
  bpflab lesson 1 --kernel ./bzImage   a kernel you built
  bpflab lesson 1 -v --timings         also the guest's console, and where the time went
  bpflab lesson 1 --shell              then a shell in the guest: type `ls` and watch

Exit status: 0 when the lesson passed, 1 when it failed (or the VM did not finish),
3 when it cannot run on this kernel (unsupported, with the reason).")]
    Lesson(LessonArgs),
    /// List the lessons.
    Lessons,
    /// List the kernel catalog and what is cached; build minimal kernels from source.
    Kernels {
        #[command(subcommand)]
        action: Option<KernelsAction>,
    },
    /// Run lessons on many kernels and both arches; report a table (and JSON, Markdown).
    #[command(after_help = "\
Examples:
  bpflab matrix                                  every lesson, kernel and arch
  bpflab matrix --arch x86_64 --kernels 5.10,6.1 some of them
  bpflab matrix --lessons 1,3 --jobs 4           some lessons, four VMs at a time

One VM boot per (kernel, arch) runs all the lessons. Results go to the terminal and to
target/bpflab/matrix.json and matrix.md (or --report-dir).")]
    Matrix(MatrixArgs),
    /// Measure where the time of `lesson 1` goes: warm runs (median and spread) and a
    /// cold run with an empty cache. Prints a table; writes target/bpflab/bench.json.
    Bench {
        /// Kernel: a catalog series or a path.
        #[arg(long, short = 'k', value_name = "SERIES|PATH")]
        kernel: Option<String>,
        /// Guest architecture.
        #[arg(long, value_parser = parse_arch, default_value = default_arch())]
        arch: Arch,
        /// Warm runs to make.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Skip the cold run (it downloads the kernel again into a scratch cache).
        #[arg(long)]
        no_cold: bool,
        /// KVM when usable, else emulation (auto); or force one.
        #[arg(long, value_enum, default_value_t = AccelRequest::Auto)]
        accel: AccelRequest,
        /// Also time vmtest and virtme-ng running `true` against bpflab's lesson 1, side by
        /// side on one kernel image: `<series>-peers` (built from source if not cached,
        /// ~15 min), or the image given with --kernel. x86-64 only.
        #[arg(long)]
        peers: bool,
        /// Rounds of the side-by-side comparison (each runs all three once).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Merge matrix reports (JSON, e.g. from CI shards) into one table.
    MergeReports {
        /// matrix.json files to merge.
        #[arg(required = true)]
        reports: Vec<std::path::PathBuf>,
        /// Where to write the merged matrix.json and matrix.md.
        #[arg(long, default_value = "target/bpflab")]
        report_dir: std::path::PathBuf,
        /// How many (kernel, arch) cells the reports must hold between them: fewer (a
        /// shard that never uploaded its report) fails the merge.
        #[arg(long, value_name = "CELLS", value_parser = parse_cells)]
        expect: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum KernelsAction {
    /// Pin the newest Debian package of every series in images/kernels.lock.
    Update {
        /// Architectures (comma-separated); default: both.
        #[arg(long, value_delimiter = ',', value_parser = parse_arch, value_name = "ARCH,...")]
        arch: Vec<Arch>,
    },
    /// Build a kernel for a series from source (tinyconfig + kernel-config/), then boot
    /// it with `--kernel <series>-<flavour>`, e.g. `--kernel 6.1-minimal`.
    Build {
        /// Kernel series, e.g. 6.1.
        series: String,
        /// What the kernel is for: `minimal` has only what the lessons need; `peers` can
        /// also be booted by vmtest and virtme-ng, for `bpflab bench --peers`.
        #[arg(long, value_enum, default_value = "minimal")]
        flavour: crate::kernel::build::Flavour,
        /// Architecture to build for (arm64 is cross-compiled on x86-64 hosts).
        #[arg(long, value_parser = parse_arch, default_value = default_arch())]
        arch: Arch,
        /// Parallel compile jobs, 1 or more; default: the number of CPUs.
        #[arg(long, short, value_parser = parse_compile_jobs)]
        jobs: Option<usize>,
    },
}

#[derive(Debug, clap::Args)]
struct MatrixArgs {
    /// Kernel series (comma-separated); default: every series in the catalog.
    #[arg(long, value_delimiter = ',', value_name = "SERIES,...")]
    kernels: Vec<String>,
    /// Architectures (comma-separated); default: x86_64 and arm64.
    #[arg(long, value_delimiter = ',', value_parser = parse_arch, value_name = "ARCH,...")]
    arch: Vec<Arch>,
    /// Lessons (comma-separated); default: every lesson (not the mistakes, 90 and up).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    lessons: Vec<u32>,
    /// How many VMs run at the same time, 1 or more; default: the number of CPUs.
    #[arg(long, short, value_parser = parse_vms)]
    jobs: Option<usize>,
    /// KVM when usable, else emulation (auto); or force one.
    #[arg(long, value_enum, default_value_t = AccelRequest::Auto)]
    accel: AccelRequest,
    /// Stop a cell's VM after this many seconds (1 to 86400, a day).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: u64,
    /// Where to write matrix.json and matrix.md.
    #[arg(long, default_value = "target/bpflab")]
    report_dir: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
struct LessonArgs {
    /// Lesson number (`bpflab lessons` lists them).
    number: u32,
    /// Kernel: a catalog series such as 6.1 or 5.10, or a path to a kernel image.
    /// Default: the catalog's default series.
    #[arg(long, short = 'k', value_name = "SERIES|PATH")]
    kernel: Option<String>,
    /// Guest architecture: x86_64 or arm64.
    #[arg(long, value_parser = parse_arch, default_value = default_arch())]
    arch: Arch,
    /// Part of the lesson to run (repeatable); default: all of them in order.
    #[arg(long = "part", value_name = "PART")]
    parts: Vec<String>,
    /// After the lesson, open a shell inside the guest with its programs still attached:
    /// type commands and watch the lesson react. `exit` ends the VM.
    #[arg(long)]
    shell: bool,
    /// Stop the VM if it has not finished after this many seconds, 1 to 86400 (a day)
    /// [default: 180; none with --shell].
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<u64>,
    /// KVM when usable, else emulation (auto); or force one.
    #[arg(long, value_enum, default_value_t = AccelRequest::Auto)]
    accel: AccelRequest,
    /// QEMU machine type (default: microvm on x86_64, virt on arm64).
    #[arg(long, value_enum)]
    machine: Option<Machine>,
    /// Guest memory in MiB, at least 128 (less makes newer guest kernels panic out of
    /// memory during the lessons).
    #[arg(long, default_value_t = 512, value_name = "MIB", value_parser = parse_memory)]
    memory: u32,
    /// QEMU CPU model (default: `host` with KVM; `cortex-a57` for arm64 under TCG, the
    /// fastest to emulate).
    #[arg(long, value_name = "MODEL")]
    cpu: Option<String>,
    /// Also show the guest's console: the kernel's boot log and messages.
    #[arg(long, short)]
    verbose: bool,
    /// Print where the time went at the end.
    #[arg(long)]
    timings: bool,
    /// Ask the archive for the newest kernel of the series even if one is cached.
    #[arg(long)]
    refresh_kernel: bool,
    /// Make the guest fail on purpose: kernel-panic, hang, silent or agent-crash (for
    /// testing bpflab).
    #[arg(long, hide = true, value_parser = parse_fault)]
    inject_fault: Option<Fault>,
}

/// The longest `--timeout`: a lesson or a matrix cell that has not finished in a day is
/// stuck, and far longer ones cannot be deadlines at all (they overflow the clock).
const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

fn parse_timeout(s: &str) -> Result<u64, String> {
    whole_number(s)
        .filter(|secs| (1..=MAX_TIMEOUT_SECS).contains(secs))
        .ok_or_else(|| format!("give 1 to {MAX_TIMEOUT_SECS} seconds (a day)"))
}

fn parse_memory(s: &str) -> Result<u32, String> {
    let min = crate::vm::qemu::MIN_MEMORY_MIB;
    whole_number(s).filter(|mib| *mib >= min).ok_or_else(|| {
        format!("give at least {min} MiB: with less, guest kernels run out of memory during the lessons")
    })
}

fn parse_vms(s: &str) -> Result<usize, String> {
    at_least_one(s).ok_or_else(|| jobs_error("VM at a time"))
}

fn parse_compile_jobs(s: &str) -> Result<usize, String> {
    at_least_one(s).ok_or_else(|| jobs_error("compile job"))
}

fn jobs_error(what: &str) -> String {
    format!(
        "give 1 {what} or more, or leave --jobs out for one per CPU ({} here)",
        config::cpus()
    )
}

fn parse_cells(s: &str) -> Result<usize, String> {
    at_least_one(s).ok_or_else(|| "give the number of cells, 1 or more (kernels × arches)".into())
}

fn at_least_one(s: &str) -> Option<usize> {
    whole_number(s).filter(|n| *n >= 1)
}

fn whole_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("unknown fault `{s}` (kernel-panic, hang, silent, agent-crash)"))
}

fn default_arch() -> &'static str {
    Arch::host().unwrap_or(Arch::X86_64).name()
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse()
}

impl Cli {
    /// Runs the command; the exit code says whether everything passed.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Lesson(args) => lesson(args),
            Command::Lessons => list_lessons(),
            Command::Kernels { action: None } => list_kernels(),
            Command::Kernels {
                action:
                    Some(KernelsAction::Build {
                        series,
                        flavour,
                        arch,
                        jobs,
                    }),
            } => build_kernel(&series, flavour, arch, jobs),
            Command::Kernels {
                action: Some(KernelsAction::Update { arch }),
            } => update_kernels(arch),
            Command::Matrix(args) => matrix(args),
            Command::MergeReports {
                reports,
                report_dir,
                expect,
            } => merge_reports(&reports, &report_dir, expect),
            Command::Bench {
                kernel,
                arch,
                runs,
                no_cold,
                accel,
                peers,
                rounds,
            } => {
                let code = bench(kernel.clone(), arch, runs, !no_cold, accel)?;
                if peers {
                    bench_peers(kernel, arch, rounds, accel)?;
                }
                Ok(code)
            }
        }
    }
}

fn lesson(args: LessonArgs) -> anyhow::Result<ExitCode> {
    let request = RunRequest {
        lessons: vec![(args.number, args.parts)],
        kernel: args.kernel.as_deref().map(KernelSpec::parse),
        arch: args.arch,
        accel: args.accel,
        machine: args.machine,
        timeout: match (args.timeout, args.shell) {
            (Some(secs), _) => Some(Duration::from_secs(secs)),
            (None, true) => None,
            (None, false) => Some(Duration::from_secs(180)),
        },
        shell: args.shell,
        cpu: args.cpu,
        cache_dir: None,
        memory_mib: args.memory,
        verbose_kernel: args.verbose,
        refresh_kernel: args.refresh_kernel,
        fault: args.inject_fault,
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
    Ok(if result.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list_lessons() -> anyhow::Result<ExitCode> {
    let all = lessons::discover(&config::source_root().join("lessons"))?;
    // Numbers from 90 are mistakes to learn from; test fixtures are not for learners.
    let (lessons, mistakes): (Vec<_>, Vec<_>) = all
        .into_iter()
        .filter(|l| !l.fixture)
        .partition(|l| l.number < 90);
    let show = |l: &lessons::Lesson| {
        let parts = match l.parts.is_empty() {
            true => String::new(),
            false => format!("  (parts: {})", l.parts.join(", ")),
        };
        println!("{:>3}  {:<10} {}{parts}", l.number, l.name, l.title);
    };
    lessons.iter().for_each(show);
    if !mistakes.is_empty() {
        println!("\nMistakes to learn from (they fail on purpose: read the error, then fix them):");
        mistakes.iter().for_each(show);
    }
    Ok(ExitCode::SUCCESS)
}

fn update_kernels(arch: Vec<Arch>) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let catalog = Catalog::load(&config::source_root().join("images/catalog.toml"))?;
    let arches = if arch.is_empty() {
        Arch::ALL.to_vec()
    } else {
        arch
    };
    let changes = kernel::update_lock(&catalog, &config, &arches)?;
    if changes.is_empty() {
        term::status("images/kernels.lock already pins the newest packages");
    }
    for change in changes {
        println!("{change}");
    }
    Ok(ExitCode::SUCCESS)
}

fn build_kernel(
    series: &str,
    flavour: crate::kernel::build::Flavour,
    arch: Arch,
    jobs: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let catalog = Catalog::load(&config::source_root().join("images/catalog.toml"))?;
    let jobs = jobs.unwrap_or_else(config::cpus);
    let image = crate::kernel::build::obtain(&config, &catalog, series, flavour, arch, jobs)?;
    println!("{}", image.image.display());
    term::status(format!(
        "boot it with: cargo run -- lesson 1 --kernel {}",
        image.series
    ));
    Ok(ExitCode::SUCCESS)
}

fn list_kernels() -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let catalog = Catalog::load(&config::source_root().join("images/catalog.toml"))?;
    println!(
        "{:<8} {:<8} {:<30} cached",
        "series", "arch", "sources (in order)"
    );
    for k in &catalog.kernels {
        for arch in Arch::ALL {
            let mut sources = Vec::new();
            if k.debian_pattern(arch).is_some() {
                sources.push("debian-package");
            }
            if let Some(src) = &k.source {
                if src.debian.is_some() {
                    sources.push("debian-source");
                }
                if src.kernel_org.is_some() {
                    sources.push("kernel.org");
                }
            }
            let mut cached = Vec::new();
            if let Some(pkg) = kernel::cached(&config, &k.series, arch) {
                cached.push(pkg);
            }
            for flavour in crate::kernel::build::Flavour::ALL {
                let built = crate::kernel::build::built_dir(&config, &k.series, flavour, arch);
                if built.join("vmlinuz").is_file() {
                    cached.push(format!("{} (built)", flavour.kernel_name(&k.series)));
                }
            }
            let default = if k.series == catalog.default {
                " (default)"
            } else {
                ""
            };
            let cached = if cached.is_empty() {
                "-".to_string()
            } else {
                cached.join(", ")
            };
            println!(
                "{:<8} {:<8} {:<30} {cached}{default}",
                k.series,
                arch.name(),
                sources.join(",")
            );
        }
    }
    println!("\ncache: {}", config.cache_dir.display());
    println!("boot a series with --kernel <series>; a build from source with --kernel <series>-minimal (or -peers)");
    Ok(ExitCode::SUCCESS)
}

fn matrix(args: MatrixArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load(&config::source_root().join("images/catalog.toml"))?;
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
    let lessons: Vec<u32> = match args.lessons.is_empty() {
        true => all.iter().map(|l| l.number).filter(|n| *n < 90).collect(),
        false => {
            for n in &args.lessons {
                lessons::find(&all, *n)?;
            }
            args.lessons
        }
    };
    let jobs = args.jobs.unwrap_or_else(config::cpus);
    let request = matrix::MatrixRequest {
        kernels,
        arches,
        lessons,
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
        let summary: Vec<String> = match &cell.unavailable {
            Some(why) => vec![format!("unavailable: {}", why.lines().next().unwrap_or(""))],
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

fn merge_reports(
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

fn bench(
    kernel: Option<String>,
    arch: Arch,
    runs: usize,
    cold: bool,
    accel: AccelRequest,
) -> anyhow::Result<ExitCode> {
    let mut request = RunRequest::lesson(1);
    request.kernel = kernel.as_deref().map(KernelSpec::parse);
    request.arch = arch;
    request.accel = accel;
    term::status("warming up (fetches and builds whatever is not cached yet)");
    let (_, first) = crate::bench::sample(&request)?;
    let mut warm = Vec::new();
    for i in 0..runs {
        crate::interrupt::check()?;
        term::status(format!("warm run {}/{runs}", i + 1));
        warm.push(crate::bench::sample(&request)?.0);
    }
    let cold = match cold {
        false => None,
        true => {
            // An empty cache of its own, and no compiled lessons: the first run of a new user
            // (minus building the agent, which cargo caches in target/).
            term::status("cold run: empty kernel cache, lessons recompiled");
            let scratch = tempfile::tempdir()?;
            let _ = std::fs::remove_dir_all(config::work_dir().join("bpf"));
            let mut cold = request.clone();
            cold.cache_dir = Some(scratch.path().to_path_buf());
            Some(crate::bench::sample(&cold)?.0)
        }
    };
    let report = crate::bench::BenchReport {
        kernel: first.kernel.origin.clone(),
        arch: arch.name().to_string(),
        accel: first.accel.accel.to_string(),
        kernel_bytes: std::fs::metadata(&first.kernel.image)
            .map(|m| m.len())
            .unwrap_or(0),
        initramfs_bytes: first.initramfs_bytes,
        warm,
        cold,
    };
    println!("{}", crate::bench::table(&report));
    let path = config::work_dir().join("bench.json");
    std::fs::create_dir_all(config::work_dir())?;
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    term::status(format!("figures written to {}", path.display()));
    Ok(ExitCode::SUCCESS)
}

/// `bench --peers`: bpflab, vmtest and virtme-ng in turns on one kernel image.
fn bench_peers(
    kernel: Option<String>,
    arch: Arch,
    rounds: usize,
    accel: AccelRequest,
) -> anyhow::Result<()> {
    use crate::bench::peers;
    use crate::kernel::build::Flavour;
    anyhow::ensure!(
        arch == Arch::X86_64,
        "--peers compares on x86-64 guests only (the peers' arm64 support needs other kernels)"
    );
    let config = Config::load()?;
    let catalog = Catalog::load(&config::source_root().join("images/catalog.toml"))?;
    // The peers boot a compressed image (bzImage); bpflab boots the very same file.
    let image = match kernel.as_deref().map(KernelSpec::parse) {
        Some(KernelSpec::Path(path)) => path,
        spec => {
            let series = match &spec {
                Some(KernelSpec::Series(name)) => Flavour::split(name)
                    .map(|(series, _)| series.to_string())
                    .unwrap_or_else(|| name.clone()),
                _ => catalog.default.clone(),
            };
            let built = crate::kernel::build::obtain(
                &config,
                &catalog,
                &series,
                Flavour::Peers,
                arch,
                config::cpus(),
            )?;
            // bpflab itself would boot the uncompressed vmlinux beside it.
            built.image.with_file_name("vmlinuz")
        }
    };
    let accel = crate::vm::accel::choose(accel, arch)?.accel;
    let report = peers::compare(&image, accel, rounds)?;
    println!("{}", peers::table(&report));
    let path = config::work_dir().join("bench-peers.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    term::status(format!("figures written to {}", path.display()));
    Ok(())
}
