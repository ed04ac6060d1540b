//! Running one QEMU guest: start it, stream its console and event channel, notice panics,
//! hangs and Ctrl-C, and make sure it is gone (with nothing left behind) when this returns.

use std::time::{Duration, Instant};

use bpflab_protocol::Event;

use crate::tools::Program;
use crate::vm::qemu::QemuConfig;

pub mod accel;
mod lines;
mod process;
mod pump;
pub mod qemu;

use process::{make_channel_fifos, reap, spawn, TerminalState};
use pump::pump;

/// What the VM produced, line by line, as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmLine {
    /// A line of the guest's console (kernel messages, agent diagnostics).
    Console(String),
    /// An event from the guest agent.
    Event(Event),
}

/// How the VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEnd {
    /// The agent finished its plan and the guest powered off.
    Finished,
    /// The guest kernel panicked.
    KernelPanic,
    /// Nothing finished before the timeout; QEMU was killed.
    TimedOut(Duration),
    /// QEMU exited before the agent finished (bad arguments, unbootable kernel, crash).
    ExitedEarly(String),
    /// The user pressed Ctrl-C; QEMU was killed.
    Interrupted,
}

/// The end of a VM and what helps explain it.
#[derive(Debug, Clone)]
pub struct VmReport {
    /// How it ended.
    pub end: VmEnd,
    /// The last console lines (the useful part of a panic or a hang).
    pub console_tail: Vec<String>,
    /// What QEMU itself printed on stderr.
    pub qemu_stderr: String,
    /// From start to QEMU's exit.
    pub wall: Duration,
    /// QEMU's peak resident memory, in KiB.
    pub qemu_max_rss_kib: Option<u64>,
    /// The kernel's "Kernel panic - not syncing: …" line, kept even when a long oops
    /// pushes it out of `console_tail`.
    pub panic_line: Option<String>,
}

impl VmReport {
    /// The report of a run that needed no VM (every lesson's outcome was known before
    /// boot): it ended normally, having done nothing.
    pub fn not_needed() -> VmReport {
        VmReport {
            end: VmEnd::Finished,
            console_tail: Vec::new(),
            qemu_stderr: String::new(),
            wall: Duration::ZERO,
            qemu_max_rss_kib: None,
            panic_line: None,
        }
    }
}

/// How to run the VM.
#[derive(Debug, Clone, Copy)]
pub struct VmOptions {
    /// Kill the VM if it has not finished by then (none: wait as long as it runs).
    pub timeout: Option<Duration>,
    /// The user's terminal is connected to the guest console (for `--shell`): keystrokes
    /// go in, console bytes come out as they are, not line by line.
    pub interactive: bool,
}

/// Boots the VM described by `config` with `qemu` and reports every line to `on_line`.
/// The channel FIFOs are created at `config.channel_fifo` (`.in`/`.out`); the caller owns
/// the directory they are in.
pub fn run(
    qemu: &Program,
    config: &QemuConfig,
    options: VmOptions,
    mut on_line: impl FnMut(VmLine),
) -> anyhow::Result<VmReport> {
    let fifo_out = make_channel_fifos(&config.channel_fifo)?;
    let terminal = options.interactive.then(TerminalState::save).flatten();
    let started = Instant::now();
    let mut child = spawn(qemu, config, options.interactive)?;
    // From here on, every path out of this function kills and reaps QEMU.
    let result = pump(
        &mut child,
        fifo_out,
        config.channel().0,
        started,
        options,
        &mut on_line,
    );
    let _ = child.kill();
    let (status, max_rss) = reap(&mut child);
    // QEMU puts the terminal in raw mode for the guest; if it was killed, undo that.
    drop(terminal);
    let mut report = result?;
    report.wall = started.elapsed();
    report.qemu_max_rss_kib = max_rss;
    if let VmEnd::ExitedEarly(reason) = &mut report.end {
        if let Some(status) = &status {
            *reason = format!("QEMU exited ({status}) before the guest finished");
        }
    }
    Ok(report)
}
