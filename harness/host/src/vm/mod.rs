//! Running one QEMU guest: start it, stream its console and event channel, notice panics,
//! hangs and Ctrl-C, and make sure it is gone (with nothing left behind) when this returns.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bpflab_protocol::Event;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use crate::interrupt;
use crate::vm::qemu::{ChannelKind, QemuConfig};

pub mod accel;
mod lines;
pub mod qemu;
use lines::{LineBuffer, MarkerFilter};

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

const TAIL_LINES: usize = 40;
/// After a panic, how long to keep reading so the whole oops reaches the user.
const PANIC_DRAIN: Duration = Duration::from_millis(800);
/// After the agent's `Done`, how long the guest gets to power off by itself.
const POWEROFF_GRACE: Duration = Duration::from_secs(5);

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
    qemu: &Path,
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

/// Whether the child exited, without reaping it (its resource usage is read by `reap`).
fn has_exited(child: &Child) -> bool {
    // SAFETY: waitid with WNOWAIT only inspects our own child; the struct is zeroed.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            child.id() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        rc == 0 && info.si_pid() != 0
    }
}

/// Waits for QEMU and reads its resource usage (peak memory), which `Child::wait` drops.
fn reap(child: &mut Child) -> (Option<String>, Option<u64>) {
    let mut status = 0;
    // SAFETY: a zeroed rusage for wait4 to fill, for our own child's pid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        return (child.wait().ok().map(|s| s.to_string()), None);
    }
    let described = if libc::WIFEXITED(status) {
        format!("exit status: {}", libc::WEXITSTATUS(status))
    } else {
        format!("signal: {}", libc::WTERMSIG(status))
    };
    // ru_maxrss is in KiB on Linux.
    (Some(described), Some(usage.ru_maxrss as u64))
}

fn make_channel_fifos(prefix: &Path) -> anyhow::Result<OwnedFd> {
    for suffix in ["in", "out"] {
        let path = prefix.with_extension(suffix);
        let c = CString::new(path.as_os_str().as_encoded_bytes()).context("FIFO path has a NUL")?;
        // SAFETY: valid path string.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("creating the FIFO {}", path.display()));
        }
    }
    // Opened before QEMU starts, non-blocking, so neither side waits for the other.
    let out = prefix.with_extension("out");
    let c = CString::new(out.as_os_str().as_encoded_bytes()).context("FIFO path has a NUL")?;
    // SAFETY: valid path; the returned descriptor is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("opening {}", out.display()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn spawn(qemu: &Path, config: &QemuConfig, interactive: bool) -> anyhow::Result<Child> {
    let mut cmd = Command::new(qemu);
    cmd.args(config.args())
        .stdin(if interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own process group: Ctrl-C goes to bpflab, which stops QEMU itself. (With
            // --shell the terminal is raw and Ctrl-C reaches the guest's shell instead.)
            if !interactive {
                libc::setpgid(0, 0);
            }
            // If bpflab dies without cleaning up (SIGKILL), QEMU dies with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", qemu.display()))?;
    for fd in [
        child.stdout.as_ref().map(|s| s.as_raw_fd()),
        child.stderr.as_ref().map(|s| s.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    Ok(child)
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

const CONSOLE: u64 = 1;
const STDERR: u64 = 2;
const CHANNEL: u64 = 3;
const WAKE: u64 = 4;

fn pump(
    child: &mut Child,
    channel: OwnedFd,
    kind: ChannelKind,
    started: Instant,
    options: VmOptions,
    on_line: &mut impl FnMut(VmLine),
) -> anyhow::Result<VmReport> {
    let epoll = Epoll::new().context("epoll_create")?;
    let mut console = child.stdout.take().context("QEMU stdout")?;
    let mut stderr = child.stderr.take().context("QEMU stderr")?;
    let mut channel = std::fs::File::from(channel);
    let watch = |fd: RawFd, token: u64| {
        epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )
    };
    watch(console.as_raw_fd(), CONSOLE)?;
    watch(stderr.as_raw_fd(), STDERR)?;
    watch(channel.as_raw_fd(), CHANNEL)?;
    if let Some(fd) = interrupt::wake_fd() {
        watch(fd, WAKE)?;
    }

    // "No timeout" is a deadline far beyond any session.
    let timeout = options
        .timeout
        .unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let deadline = started + timeout;
    let mut passthrough = options
        .interactive
        .then(|| MarkerFilter::new(kind == ChannelKind::SharedConsole));
    let mut console_buf = LineBuffer::default();
    let mut channel_buf = LineBuffer::default();
    let mut stderr_text = Vec::new();
    let mut tail = VecDeque::new();
    let mut panicked = false;
    let mut panic_line: Option<String> = None;
    let mut done = false;
    let mut stop_at: Option<Instant> = None;
    let mut events = vec![EpollEvent::default(); 8];

    let handle_console = |line: String,
                          tail: &mut VecDeque<String>,
                          panic_line_slot: &mut Option<String>,
                          on_line: &mut dyn FnMut(VmLine)|
     -> (bool, bool) {
        // On a shared console, events are the lines that begin with the marker.
        if kind == ChannelKind::SharedConsole {
            if let Some(event) = Event::from_line(&line) {
                let is_done = event == Event::Done;
                on_line(VmLine::Event(event));
                return (false, is_done);
            }
        }
        let panic = line.contains("Kernel panic - not syncing");
        if panic && panic_line_slot.is_none() {
            *panic_line_slot = Some(line.clone());
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        on_line(VmLine::Console(line));
        (panic, false)
    };

    let end = loop {
        let now = Instant::now();
        if interrupt::interrupted() {
            break VmEnd::Interrupted;
        }
        if now >= deadline {
            break VmEnd::TimedOut(timeout);
        }
        if let Some(at) = stop_at {
            if now >= at {
                break if panicked {
                    VmEnd::KernelPanic
                } else {
                    VmEnd::Finished
                };
            }
        }
        let wait = deadline
            .min(stop_at.unwrap_or(deadline))
            .saturating_duration_since(now);
        let n = match epoll.wait(wait.as_millis().clamp(1, 200) as i32, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e).context("epoll_wait"),
        };
        for event in &events[..n] {
            match event.data() {
                CONSOLE => {
                    let raw = console_buf.read_available(&mut console);
                    if let Some(filter) = passthrough.as_mut() {
                        let shown = filter.feed(&raw);
                        let mut out = std::io::stdout().lock();
                        let _ = std::io::Write::write_all(&mut out, &shown);
                        let _ = std::io::Write::flush(&mut out);
                    }
                    for line in console_buf.feed(&raw) {
                        let (panic, is_done) =
                            handle_console(line, &mut tail, &mut panic_line, on_line);
                        if panic && !panicked {
                            panicked = true;
                            stop_at = Some(Instant::now() + PANIC_DRAIN);
                        }
                        if is_done {
                            done = true;
                            stop_at.get_or_insert(Instant::now() + POWEROFF_GRACE);
                        }
                    }
                    if console_buf.eof() {
                        epoll
                            .ctl(
                                ControlOperation::Delete,
                                console.as_raw_fd(),
                                EpollEvent::default(),
                            )
                            .ok();
                    }
                }
                STDERR => {
                    let mut buf = [0u8; 4096];
                    match stderr.read(&mut buf) {
                        Ok(0) => {
                            epoll
                                .ctl(
                                    ControlOperation::Delete,
                                    stderr.as_raw_fd(),
                                    EpollEvent::default(),
                                )
                                .ok();
                        }
                        Ok(k) => stderr_text.extend_from_slice(&buf[..k]),
                        Err(_) => {}
                    }
                }
                CHANNEL => {
                    for line in channel_buf.read_lines(&mut channel) {
                        if let Some(event) = Event::from_line(&line) {
                            if event == Event::Done {
                                done = true;
                                stop_at.get_or_insert(Instant::now() + POWEROFF_GRACE);
                            }
                            on_line(VmLine::Event(event));
                        }
                    }
                }
                _ => {}
            }
        }
        if has_exited(child) {
            // Drain what is still in the pipes: the last lines are often the important ones.
            for line in console_buf.read_lines(&mut console) {
                panicked |= handle_console(line, &mut tail, &mut panic_line, on_line).0;
            }
            for line in channel_buf.read_lines(&mut channel) {
                if let Some(event) = Event::from_line(&line) {
                    done |= event == Event::Done;
                    on_line(VmLine::Event(event));
                }
            }
            let _ = stderr.read_to_end(&mut stderr_text);
            break if panicked {
                VmEnd::KernelPanic
            } else if done {
                VmEnd::Finished
            } else {
                VmEnd::ExitedEarly("QEMU exited before the guest finished".into())
            };
        }
    };
    Ok(VmReport {
        end,
        console_tail: tail.into(),
        qemu_stderr: String::from_utf8_lossy(&stderr_text).trim_end().to_string(),
        wall: started.elapsed(),
        qemu_max_rss_kib: None,
        panic_line,
    })
}

/// The terminal's settings, put back when dropped.
struct TerminalState(libc::termios);

impl TerminalState {
    fn save() -> Option<TerminalState> {
        // SAFETY: tcgetattr on stdin with a zeroed struct to fill.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut tio: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(0, &mut tio) == 0).then_some(TerminalState(tio))
        }
    }
}

impl Drop for TerminalState {
    fn drop(&mut self) {
        // SAFETY: restores settings read from the same descriptor.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}
