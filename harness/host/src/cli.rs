//! The command line: what each command accepts, and what it does with it.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use bpflab_protocol::Fault;

use crate::accel::AccelRequest;
use crate::arch::Arch;
use crate::catalog::Catalog;
use crate::config::{self, Config};
use crate::kernel::{self, KernelSpec};
use crate::qemu::Machine;
use crate::run::{self, RunRequest};
use crate::{lessons, ui};

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
  bpflab lesson 1 --shell              then a shell in the guest: type `ls` and watch")]
    Lesson(LessonArgs),
    /// List the lessons.
    Lessons,
    /// List the kernel catalog and what is cached.
    Kernels,
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
    /// Stop the VM if it has not finished after this many seconds
    /// [default: 180; none with --shell].
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// KVM when usable, else emulation (auto); or force one.
    #[arg(long, value_enum, default_value_t = AccelRequest::Auto)]
    accel: AccelRequest,
    /// QEMU machine type (default: microvm on x86_64, virt on arm64).
    #[arg(long, value_enum)]
    machine: Option<Machine>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    memory: u32,
    /// Also show the guest's console: the kernel's boot log and messages.
    #[arg(long, short)]
    verbose: bool,
    /// Print where the time went at the end.
    #[arg(long)]
    timings: bool,
    /// Ask the archive for the newest kernel of the series even if one is cached.
    #[arg(long)]
    refresh_kernel: bool,
    /// Make the guest fail on purpose: kernel-panic, hang or silent (for testing bpflab).
    #[arg(long, hide = true, value_parser = parse_fault)]
    inject_fault: Option<Fault>,
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("unknown fault `{s}` (kernel-panic, hang, silent)"))
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
            Command::Kernels => list_kernels(),
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
        memory_mib: args.memory,
        verbose_kernel: args.verbose,
        refresh_kernel: args.refresh_kernel,
        fault: args.inject_fault,
    };
    let mut view = ui::LiveView::new(args.verbose, args.shell);
    let result = run::run(&request, &mut |p| view.show(p));
    view.finish();
    let result = result?;
    ui::explain_end(&result);
    for lesson in &result.lessons {
        // Lessons that ended in the guest were already shown live; the others get their
        // outcome here.
        if !lesson
            .events
            .iter()
            .any(|e| matches!(e, bpflab_protocol::Event::LessonEnd { .. }))
        {
            println!("{}", ui::outcome_line(lesson.number, &lesson.outcome, None));
        }
    }
    if args.timings {
        ui::print_timings(&result.timings);
    }
    Ok(if result.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list_lessons() -> anyhow::Result<ExitCode> {
    let all = lessons::discover(&config::source_root().join("lessons"))?;
    // Numbers from 90 are mistakes to learn from.
    let (lessons, mistakes): (Vec<_>, Vec<_>) = all.into_iter().partition(|l| l.number < 90);
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

fn list_kernels() -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let catalog = Catalog::load(&config::source_root().join("images/catalog.toml"))?;
    println!("{:<8} {:<8} {:<10} cached", "series", "arch", "source");
    for k in &catalog.kernels {
        for arch in Arch::ALL {
            if k.debian_pattern(arch).is_none() {
                continue;
            }
            let cached = kernel::cached(&config, &k.series, arch).unwrap_or_else(|| "-".into());
            let default = if k.series == catalog.default {
                " (default)"
            } else {
                ""
            };
            println!(
                "{:<8} {:<8} {:<10} {cached}{default}",
                k.series,
                arch.name(),
                "debian"
            );
        }
    }
    println!("\ncache: {}", config.cache_dir.display());
    Ok(ExitCode::SUCCESS)
}
