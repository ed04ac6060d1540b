//! The pump: reads QEMU's console, stderr and the event channel as they come, until the
//! guest finishes, panics, hangs past its deadline, or the user presses Ctrl-C.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, ChildStderr, ChildStdout};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bpflab_protocol::Event;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::lines::{LineBuffer, MarkerFilter};
use super::process::has_exited;
use super::qemu::ChannelKind;
use super::{VmEnd, VmLine, VmOptions, VmReport};
use crate::interrupt;

const TAIL_LINES: usize = 40;
/// After a panic, how long to keep reading so the whole oops reaches the user.
const PANIC_DRAIN: Duration = Duration::from_millis(800);
/// After the agent's `Done`, how long the guest gets to power off by itself.
const POWEROFF_GRACE: Duration = Duration::from_secs(5);

const CONSOLE: u64 = 1;
const STDERR: u64 = 2;
const CHANNEL: u64 = 3;
const WAKE: u64 = 4;

/// What the guest said so far, and what follows from it. Lines read while the guest runs
/// and lines drained after QEMU exited go through the same methods, so an event means the
/// same whenever it arrives.
struct Seen<'a, F: FnMut(VmLine)> {
    kind: ChannelKind,
    tail: VecDeque<String>,
    panic_line: Option<String>,
    panicked: bool,
    done: bool,
    /// When to stop reading: a while after a panic (for the oops) or after `Done` (for
    /// the power-off).
    stop_at: Option<Instant>,
    on_line: &'a mut F,
}

impl<'a, F: FnMut(VmLine)> Seen<'a, F> {
    fn new(kind: ChannelKind, on_line: &'a mut F) -> Self {
        Seen {
            kind,
            tail: VecDeque::new(),
            panic_line: None,
            panicked: false,
            done: false,
            stop_at: None,
            on_line,
        }
    }

    fn console_line(&mut self, line: String) {
        // On a shared console, events are the lines that begin with the marker.
        if self.kind == ChannelKind::SharedConsole {
            if let Some(event) = Event::from_line(&line) {
                return self.event(event);
            }
        }
        if line.contains("Kernel panic - not syncing") {
            self.panic_line.get_or_insert_with(|| line.clone());
            if !self.panicked {
                self.panicked = true;
                self.stop_at = Some(Instant::now() + PANIC_DRAIN);
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        (self.on_line)(VmLine::Console(line));
    }

    fn channel_line(&mut self, line: &str) {
        if let Some(event) = Event::from_line(line) {
            self.event(event);
        }
    }

    fn event(&mut self, event: Event) {
        if event == Event::Done {
            self.done = true;
            self.stop_at.get_or_insert(Instant::now() + POWEROFF_GRACE);
        }
        (self.on_line)(VmLine::Event(event));
    }

    /// After QEMU exited: what is still in the pipes (the last lines are often the
    /// important ones), then how it ended.
    fn drain(
        &mut self,
        console: (&mut LineBuffer, &mut impl Read),
        channel: (&mut LineBuffer, &mut impl Read),
    ) -> VmEnd {
        for line in console.0.read_lines(console.1) {
            self.console_line(line);
        }
        for line in channel.0.read_lines(channel.1) {
            self.channel_line(&line);
        }
        self.end_after_exit()
    }

    fn end_after_exit(&self) -> VmEnd {
        if self.panicked {
            VmEnd::KernelPanic
        } else if self.done {
            VmEnd::Finished
        } else {
            VmEnd::ExitedEarly("QEMU exited before the guest finished".into())
        }
    }
}

/// QEMU's three outputs, watched together.
struct Pipes {
    epoll: Epoll,
    console: ChildStdout,
    stderr: ChildStderr,
    channel: std::fs::File,
    console_buf: LineBuffer,
    channel_buf: LineBuffer,
    stderr_text: Vec<u8>,
}

impl Pipes {
    fn watch(child: &mut Child, channel: OwnedFd) -> anyhow::Result<Pipes> {
        let pipes = Pipes {
            epoll: Epoll::new().context("epoll_create")?,
            console: child.stdout.take().context("QEMU stdout")?,
            stderr: child.stderr.take().context("QEMU stderr")?,
            channel: std::fs::File::from(channel),
            console_buf: LineBuffer::default(),
            channel_buf: LineBuffer::default(),
            stderr_text: Vec::new(),
        };
        pipes.add(pipes.console.as_raw_fd(), CONSOLE)?;
        pipes.add(pipes.stderr.as_raw_fd(), STDERR)?;
        pipes.add(pipes.channel.as_raw_fd(), CHANNEL)?;
        if let Some(fd) = interrupt::wake_fd() {
            pipes.add(fd, WAKE)?;
        }
        Ok(pipes)
    }

    fn add(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )
    }

    fn forget(&self, fd: RawFd) {
        self.epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default())
            .ok();
    }

    /// Reads whatever the ready descriptors hold, handing lines to `seen`.
    fn read_ready<F: FnMut(VmLine)>(
        &mut self,
        ready: &[EpollEvent],
        passthrough: &mut Option<MarkerFilter>,
        seen: &mut Seen<'_, F>,
    ) {
        for event in ready {
            match event.data() {
                CONSOLE => self.read_console(passthrough, seen),
                STDERR => {
                    let mut buf = [0u8; 4096];
                    match self.stderr.read(&mut buf) {
                        Ok(0) => self.forget(self.stderr.as_raw_fd()),
                        Ok(k) => self.stderr_text.extend_from_slice(&buf[..k]),
                        Err(_) => {}
                    }
                }
                CHANNEL => {
                    for line in self.channel_buf.read_lines(&mut self.channel) {
                        seen.channel_line(&line);
                    }
                }
                _ => {}
            }
        }
    }

    fn read_console<F: FnMut(VmLine)>(
        &mut self,
        passthrough: &mut Option<MarkerFilter>,
        seen: &mut Seen<'_, F>,
    ) {
        let raw = self.console_buf.read_available(&mut self.console);
        if let Some(filter) = passthrough.as_mut() {
            let shown = filter.feed(&raw);
            let mut out = std::io::stdout().lock();
            let _ = std::io::Write::write_all(&mut out, &shown);
            let _ = std::io::Write::flush(&mut out);
        }
        for line in self.console_buf.feed(&raw) {
            seen.console_line(line);
        }
        if self.console_buf.eof() {
            self.forget(self.console.as_raw_fd());
        }
    }
}

/// Streams the guest's output to `on_line` until it ends, and says how it ended.
pub(super) fn pump(
    child: &mut Child,
    channel: OwnedFd,
    kind: ChannelKind,
    started: Instant,
    options: VmOptions,
    on_line: &mut impl FnMut(VmLine),
) -> anyhow::Result<VmReport> {
    let mut pipes = Pipes::watch(child, channel)?;
    // "No timeout" is a deadline far beyond any session.
    let timeout = options
        .timeout
        .unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let deadline = started
        .checked_add(timeout)
        .unwrap_or(started + Duration::from_secs(365 * 24 * 3600));
    let mut passthrough = options
        .interactive
        .then(|| MarkerFilter::new(kind == ChannelKind::SharedConsole));
    let mut seen = Seen::new(kind, on_line);
    let mut ready = vec![EpollEvent::default(); 8];
    let end = loop {
        let now = Instant::now();
        if interrupt::interrupted() {
            break VmEnd::Interrupted;
        }
        if now >= deadline {
            break VmEnd::TimedOut(timeout);
        }
        if seen.stop_at.is_some_and(|at| now >= at) {
            break if seen.panicked {
                VmEnd::KernelPanic
            } else {
                VmEnd::Finished
            };
        }
        let wait = deadline
            .min(seen.stop_at.unwrap_or(deadline))
            .saturating_duration_since(now);
        let n = match pipes
            .epoll
            .wait(wait.as_millis().clamp(1, 200) as i32, &mut ready)
        {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e).context("epoll_wait"),
        };
        pipes.read_ready(&ready[..n], &mut passthrough, &mut seen);
        if has_exited(child) {
            let end = seen.drain(
                (&mut pipes.console_buf, &mut pipes.console),
                (&mut pipes.channel_buf, &mut pipes.channel),
            );
            let _ = pipes.stderr.read_to_end(&mut pipes.stderr_text);
            break end;
        }
    };
    Ok(VmReport {
        end,
        console_tail: seen.tail.into(),
        qemu_stderr: String::from_utf8_lossy(&pipes.stderr_text)
            .trim_end()
            .to_string(),
        wall: started.elapsed(),
        qemu_max_rss_kib: None,
        panic_line: seen.panic_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On arm64 the events share the console: a `Done` that arrives only in the last
    /// read after QEMU exited still means the guest finished.
    #[test]
    fn a_done_read_only_in_the_final_drain_still_finishes_the_run() {
        let mut lines = Vec::new();
        let mut on_line = |line: VmLine| lines.push(line);
        let mut seen = Seen::new(ChannelKind::SharedConsole, &mut on_line);
        let console_bytes = format!("reboot: Power down\n{}\n", Event::Done.to_line());
        let (mut console_buf, mut channel_buf) = (LineBuffer::default(), LineBuffer::default());
        let end = seen.drain(
            (&mut console_buf, &mut console_bytes.as_bytes()),
            (&mut channel_buf, &mut &b""[..]),
        );
        assert_eq!(end, VmEnd::Finished);
        assert!(lines.contains(&VmLine::Event(Event::Done)), "{lines:?}");
    }

    #[test]
    fn a_guest_that_exits_without_done_exited_early_and_a_panic_wins() {
        let mut on_line = |_: VmLine| {};
        let mut seen = Seen::new(ChannelKind::SharedConsole, &mut on_line);
        let (mut a, mut b) = (LineBuffer::default(), LineBuffer::default());
        let end = seen.drain((&mut a, &mut &b"booting\n"[..]), (&mut b, &mut &b""[..]));
        assert!(matches!(end, VmEnd::ExitedEarly(_)), "{end:?}");
        let panic = b"Kernel panic - not syncing: Attempted to kill init!\n";
        let end = seen.drain((&mut a, &mut &panic[..]), (&mut b, &mut &b""[..]));
        assert_eq!(end, VmEnd::KernelPanic);
        assert!(seen.panic_line.is_some());
    }
}
