//! What each command accepts: the arguments, their checks and their help.

use bpflab_protocol::Fault;
use clap::{Parser, Subcommand};

use crate::arch::Arch;
use crate::config;
use crate::vm::accel::AccelRequest;
use crate::vm::qemu::Machine;

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
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Start a new lesson: lessons/NN-name/, in lesson 1's shape, passing on its first run.
    #[command(after_help = "\
It makes a complete lesson like lesson 1 — a kprobe on clone(2) that prints \"Hello
World!!\" for every process created — for you to make your own:

  lesson.toml   its number, name and title, its kind, the C files to compile
  hello.bpf.c   the kernel side, compiled by clang -target bpf
  src/lib.rs    the user side (Rust, aya): load, attach, run a workload, decide the outcome
  README.md     what the lesson teaches

Nothing else needs editing: bpflab finds the directory, the guest agent compiles it in,
and `cargo test` runs it (record its output's first snapshot with `cargo insta review`).
Copying a lesson directory works too: change number, name and title in its lesson.toml
and the package name in its Cargo.toml.

Example:
  bpflab new 44 my-probe       makes lessons/44-my-probe; then `bpflab lesson 44`")]
    New {
        /// Its number, the one you will type (`bpflab lessons` shows those taken).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        number: u32,
        /// Its name: lowercase letters, digits and dashes, e.g. `my-probe`.
        name: String,
    },
    /// List the kernel catalog and what is cached; build minimal kernels from source.
    Kernels {
        #[command(subcommand)]
        action: Option<KernelsAction>,
    },
    /// Say, for each tool a run needs, which one bpflab will use (the host's or its own,
    /// version, path) and why, and what is missing.
    #[command(after_help = "\
QEMU, clang, libbpf's headers and the guest arch's kernel headers are the host's when it
has them (new enough); otherwise bpflab unpacks them from Debian's archive into its cache
on first use: the packages pinned in images/tools.lock, for the Debian release whose C
library the host can run. BPFLAB_NO_PROVISION=1 (or `provision = false` in the config
file) turns that off.")]
    Doctor,
    /// Pin the Debian packages bpflab unpacks when the host lacks a tool (QEMU, clang,
    /// headers) in images/tools.lock.
    Tools {
        #[command(subcommand)]
        action: ToolsAction,
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
        /// Warm runs to make, each beside a bare boot of the same kernel (the floor); the
        /// pairs take turns at booting first and count in twos for the ratio, so an even
        /// number uses them all.
        #[arg(long, default_value_t = 6)]
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
pub(crate) enum ToolsAction {
    /// Pin the newest packages of every tool and their dependencies, per Debian release
    /// (bullseye, bookworm, trixie) and host arch.
    Update {
        /// Only these releases (e.g. `bookworm`); default: all three.
        #[arg(value_name = "RELEASE")]
        releases: Vec<String>,
        /// Host architectures (comma-separated); default: both.
        #[arg(long, value_delimiter = ',', value_parser = parse_arch, value_name = "ARCH,...")]
        arch: Vec<Arch>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KernelsAction {
    /// Pin the newest Debian or Ubuntu package of every series in images/kernels.lock
    /// (kernels, their configs and modules packages, source packages, kernel.org tarballs, the guest's busybox).
    Update {
        /// Only these series (e.g. `4.4 5.4`): their kernels and sources, nothing else.
        /// Default: every series, and the guest's tools.
        #[arg(value_name = "SERIES")]
        series: Vec<String>,
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
#[allow(missing_docs)] // its help is the `matrix` variant's doc
pub struct MatrixArgs {
    /// Kernel series (comma-separated); default: every series in the catalog.
    #[arg(long, value_delimiter = ',', value_name = "SERIES,...")]
    pub(crate) kernels: Vec<String>,
    /// Architectures (comma-separated); default: x86_64 and arm64.
    #[arg(long, value_delimiter = ',', value_parser = parse_arch, value_name = "ARCH,...")]
    pub(crate) arch: Vec<Arch>,
    /// Lessons (comma-separated); default: every lesson and solution, and the mistakes
    /// the kernel must refuse (a mistake passes when it is refused for its reason).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub(crate) lessons: Vec<u32>,
    /// How many VMs run at the same time, 1 or more; default: the number of CPUs.
    #[arg(long, short, value_parser = parse_vms)]
    pub(crate) jobs: Option<usize>,
    /// KVM when usable, else emulation (auto); or force one.
    #[arg(long, value_enum, default_value_t = AccelRequest::Auto)]
    pub(crate) accel: AccelRequest,
    /// Stop a cell's VM after this many seconds (1 to 86400, a day).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: u64,
    /// Where to write matrix.json and matrix.md.
    #[arg(long, default_value = "target/bpflab")]
    pub(crate) report_dir: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
#[allow(missing_docs)] // its help is the `lesson` variant's doc
pub struct LessonArgs {
    /// Lesson number (`bpflab lessons` lists them).
    pub(crate) number: u32,
    /// Kernel: a catalog series such as 6.1 or 5.10, or a path to a kernel image
    /// (bzImage, vmlinux, arm64 Image; a `config` beside it lets bpflab check it first).
    /// An x86-64 bzImage built with CONFIG_PVH boots from the vmlinux inside it, unpacked
    /// once into the cache (BPFLAB_NO_PVH=1 boots the bzImage itself, through its
    /// decompressor). Default: the catalog's default series.
    #[arg(long, short = 'k', value_name = "SERIES|PATH")]
    pub(crate) kernel: Option<String>,
    /// Guest architecture: x86_64 or arm64.
    #[arg(long, value_parser = parse_arch, default_value = default_arch())]
    pub(crate) arch: Arch,
    /// Part of the lesson to run (repeatable); default: all of them in order.
    #[arg(long = "part", value_name = "PART")]
    pub(crate) parts: Vec<String>,
    /// After the lesson, open a shell inside the guest with its programs still attached:
    /// type commands and watch the lesson react. `exit` ends the VM.
    #[arg(long)]
    pub(crate) shell: bool,
    /// Stop the VM if it has not finished after this many seconds, 1 to 86400 (a day)
    /// [default: 180; none with --shell].
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<u64>,
    /// KVM when usable, else emulation (auto); or force one.
    #[arg(long, value_enum, default_value_t = AccelRequest::Auto)]
    pub(crate) accel: AccelRequest,
    /// QEMU machine type (default: microvm on x86_64, or pc for kernels older than 5.8
    /// under emulation, which hang on microvm; virt on arm64).
    #[arg(long, value_enum)]
    pub(crate) machine: Option<Machine>,
    /// Guest memory in MiB, at least 128 (less makes newer guest kernels panic out of
    /// memory during the lessons).
    #[arg(long, default_value_t = crate::run::DEFAULT_MEMORY_MIB, value_name = "MIB", value_parser = parse_memory)]
    pub(crate) memory: u32,
    /// QEMU CPU model (default: `host` with KVM; `cortex-a57` for arm64 under TCG, the
    /// fastest to emulate).
    #[arg(long, value_name = "MODEL")]
    pub(crate) cpu: Option<String>,
    /// Also show the guest's console: the kernel's boot log and messages.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Print where the time went at the end.
    #[arg(long)]
    pub(crate) timings: bool,
    /// Ask the archive for the newest kernel of the series even if one is cached.
    #[arg(long)]
    pub(crate) refresh_kernel: bool,
    /// Make the guest fail on purpose: kernel-panic, hang, silent or agent-crash (for
    /// testing bpflab).
    #[arg(long, hide = true, value_parser = parse_fault)]
    pub(crate) inject_fault: Option<Fault>,
}

/// The longest `--timeout`: a lesson or a matrix cell that has not finished in a day is
/// stuck, and far longer ones cannot be deadlines at all (they overflow the clock).
const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

pub(crate) fn parse_timeout(s: &str) -> Result<u64, String> {
    whole_number(s)
        .filter(|secs| (1..=MAX_TIMEOUT_SECS).contains(secs))
        .ok_or_else(|| format!("give 1 to {MAX_TIMEOUT_SECS} seconds (a day)"))
}

pub(crate) fn parse_memory(s: &str) -> Result<u32, String> {
    let min = crate::vm::qemu::MIN_MEMORY_MIB;
    whole_number(s).filter(|mib| *mib >= min).ok_or_else(|| {
        format!("give at least {min} MiB: with less, guest kernels run out of memory during the lessons")
    })
}

pub(crate) fn parse_vms(s: &str) -> Result<usize, String> {
    at_least_one(s).ok_or_else(|| jobs_error("VM at a time"))
}

pub(crate) fn parse_compile_jobs(s: &str) -> Result<usize, String> {
    at_least_one(s).ok_or_else(|| jobs_error("compile job"))
}

fn jobs_error(what: &str) -> String {
    format!(
        "give 1 {what} or more, or leave --jobs out for one per CPU ({} here)",
        config::cpus()
    )
}

pub(crate) fn parse_cells(s: &str) -> Result<usize, String> {
    at_least_one(s).ok_or_else(|| "give the number of cells, 1 or more (kernels × arches)".into())
}

fn at_least_one(s: &str) -> Option<usize> {
    whole_number(s).filter(|n| *n >= 1)
}

fn whole_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

pub(crate) fn parse_fault(s: &str) -> Result<Fault, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("unknown fault `{s}` (kernel-panic, hang, silent, agent-crash)"))
}

pub(crate) fn default_arch() -> &'static str {
    Arch::host().unwrap_or(Arch::X86_64).name()
}

pub(crate) fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse()
}
