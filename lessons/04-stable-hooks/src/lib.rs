//! Lesson 4, user side: lesson 1's greeting again, from the hooks that do not depend on
//! the name of a kernel function staying the same, in three parts:
//!
//! - **tracepoint**: `tracepoint.bpf.o` on `syscalls:sys_enter_clone`;
//! - **raw-tracepoint**: `raw_tracepoint.bpf.o` on `sys_enter`, every system call, which
//!   the program filters down to clone;
//! - **fentry**: `fentry.bpf.o` on the function behind clone(2), found in the kernel's
//!   BTF. Unsupported where the kernel has no BTF.
//!
//! Each part creates a few processes and expects exactly one greeting for each, naming
//! the process that called clone: this one.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use aya::programs::ProgramType;
use aya::programs::{FEntry, ProgramError, RawTracePoint, TracePoint};
use aya::sys::{is_program_supported, SyscallError};
use aya::{Btf, Ebpf};
use bpflab_guest::{combine_parts, unsupported_as_outcome, workload, Lab, Outcome, Unsupported};

/// The kernel's "operation not supported" (not libc's ENOTSUP, 95), which user space sees
/// when the kernel cannot attach a program where it was asked to.
const ENOTSUPP: i32 = 524;

/// The tracepoint's directory in tracefs.
const SYS_ENTER_CLONE: &str = "events/syscalls/sys_enter_clone";

/// How many processes each part creates. Each must produce exactly one greeting.
const PROCESSES: usize = 3;

/// Runs the parts the learner asked for (all three by default).
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::new();
    if lab.wants_part("tracepoint") {
        match unsupported_as_outcome(tracepoint(lab))? {
            Outcome::Unsupported(reason) => {
                outcomes.push(Outcome::Unsupported(format!("tracepoint: {reason}")))
            }
            outcome => outcomes.push(outcome),
        }
    }
    if lab.wants_part("raw-tracepoint") {
        match unsupported_as_outcome(raw_tracepoint(lab))? {
            Outcome::Unsupported(reason) => {
                outcomes.push(Outcome::Unsupported(format!("raw-tracepoint: {reason}")))
            }
            outcome => outcomes.push(outcome),
        }
    }
    if lab.wants_part("fentry") {
        // Unsupported without kernel BTF; the other parts' results are reported beside it.
        match unsupported_as_outcome(fentry(lab))? {
            Outcome::Unsupported(reason) => {
                outcomes.push(Outcome::Unsupported(format!("fentry: {reason}")))
            }
            outcome => outcomes.push(outcome),
        }
    }
    Ok(combine_parts(outcomes))
}

fn tracepoint(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part tracepoint: syscalls:sys_enter_clone");
    // BPF programs on tracepoints came after kprobes (4.7): lesson.toml says this part
    // needs them, and the kernel is asked, as libbpf's probes do.
    lab.require_part("tracepoint")?;
    // The syscall tracepoints are generated only in kernels built with
    // CONFIG_FTRACE_SYSCALLS (bpflab's minimal builds are not): without them there is no
    // syscalls:sys_enter_clone to attach to.
    let has_event = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|tracefs| Path::new(tracefs).join(SYS_ENTER_CLONE).is_dir());
    if !has_event {
        return Err(Unsupported(
            "needs the syscall tracepoints, which this kernel was built without \
             (CONFIG_FTRACE_SYSCALLS, a build option, not a version): no \
             events/syscalls/sys_enter_clone"
                .to_string(),
        )
        .into());
    }
    let mut bpf = lab.load("tracepoint.bpf.o")?;
    let program: &mut TracePoint = bpf
        .program_mut("hello_tp")
        .context("tracepoint.bpf.o has no function `hello_tp`")?
        .try_into()?;
    program.load()?;
    program.attach("syscalls", "sys_enter_clone")?;
    lab.note("tracepoint attached to syscalls:sys_enter_clone");
    greet(lab, bpf, "tracepoint")
}

fn raw_tracepoint(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part raw-tracepoint: sys_enter, filtered to clone");
    // Raw tracepoints are 4.17+: declared in lesson.toml, asked of the kernel.
    lab.require_part("raw-tracepoint")?;
    let mut bpf = lab.load("raw_tracepoint.bpf.o")?;
    let program: &mut RawTracePoint = bpf
        .program_mut("hello_raw_tp")
        .context("raw_tracepoint.bpf.o has no function `hello_raw_tp`")?
        .try_into()?;
    program.load()?;
    program.attach("sys_enter")?;
    lab.note(format!(
        "raw tracepoint attached to sys_enter, keeping system call {} (clone on {})",
        libc::SYS_clone,
        std::env::consts::ARCH
    ));
    greet(lab, bpf, "raw tracepoint")
}

fn fentry(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part fentry: the function behind clone, found in the kernel's BTF");
    // fentry names its target by BTF id: without the kernel's own BTF there is nothing
    // to name it by (BTF bpflab encodes for an old kernel does not help: the kernel itself
    // must know the ids). lesson.toml says so; the feature is asked, not the version.
    lab.require_part("fentry")?;
    // The same name lesson 1's kprobe is attached to.
    let target = lab.syscall_fnname("clone")?;
    let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
    let mut bpf = lab.load("fentry.bpf.o")?;
    let program: &mut FEntry = bpf
        .program_mut("hello_fentry")
        .context("fentry.bpf.o has no function `hello_fentry`")?
        .try_into()?;
    // BTF alone is not enough (5.2–5.4 have it, and no fentry). A load that fails where
    // the kernel also fails aya's probe for the program type is unsupported. (The probe
    // alone would not do: it answers no on arm64 6.1, which loads this program.)
    if let Err(e) = program.load(&target, &btf) {
        if !is_program_supported(ProgramType::Tracing).unwrap_or(true) {
            return Err(Unsupported(
                "this kernel has no BTF-based tracing programs (BPF_PROG_TYPE_TRACING, 5.5+)"
                    .to_string(),
            )
            .into());
        }
        return Err(e).with_context(|| format!("loading an fentry program on {target}"));
    }
    // fentry calls the program from a BPF trampoline, which the kernel patches into the
    // start of the target through ftrace's direct calls. A kernel without them (arm64
    // before 6.4) loads the program but refuses to attach it: ENOTSUPP, 524.
    match program.attach() {
        Ok(_) => {}
        Err(ProgramError::SyscallError(SyscallError { io_error, .. }))
            if io_error.raw_os_error() == Some(ENOTSUPP) =>
        {
            return Err(Unsupported(format!(
                "attaching to {target} was refused (ENOTSUPP): this kernel cannot call a BPF \
                 trampoline from a kernel function (no ftrace direct calls, \
                 CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS; arm64 has them since 6.4)"
            ))
            .into())
        }
        Err(e) => return Err(e).with_context(|| format!("attaching fentry to {target}")),
    }
    lab.note(format!("fentry attached to {target}"));
    greet(lab, bpf, "fentry")
}

/// Creates the processes with `bpf` attached, then expects one greeting from `hook` for
/// each, naming this process. `bpf` is detached when it is dropped, at the end.
fn greet(lab: &mut Lab, bpf: Ebpf, hook: &str) -> anyhow::Result<Outcome> {
    workload::clone_children(PROCESSES)?;
    let needle = format!("Hello World!! ({hook}) pid");
    let greetings = lab.wait_for_trace(&needle, PROCESSES, Duration::from_secs(10));
    drop(bpf);
    // The workload runs in this process: clone is entered with its pid.
    let me = std::process::id();
    let ours = greetings
        .iter()
        .filter(|line| line.trim_end().ends_with(&format!("{needle} {me}")))
        .count();
    Ok(if greetings.len() == PROCESSES && ours == PROCESSES {
        Outcome::Passed(format!(
            "{hook}: {PROCESSES} processes, {PROCESSES} greetings from pid {me}"
        ))
    } else {
        Outcome::Failed(format!(
            "{hook}: {PROCESSES} processes created by pid {me}, but {} greetings seen, {ours} \
             from pid {me}",
            greetings.len()
        ))
    })
}
