//! The kernel's trace pipe, read on a thread of its own.
//!
//! The reader thread is started once, before any lesson attaches a program: starting a
//! thread is itself a clone(2), and lesson 1 greets every clone.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bpflab_protocol::Event;

use crate::EventSink;

/// Where tracefs shows the pipe: its own mount since 4.1, under debugfs before.
const PIPES: [&str; 2] = [
    "/sys/kernel/tracing/trace_pipe",
    "/sys/kernel/debug/tracing/trace_pipe",
];

/// Lines from the trace pipe, streamed to the host and kept for the current lesson.
pub struct TracePipe {
    lesson: AtomicU32,
    seen: Mutex<Vec<String>>,
    arrived: Condvar,
}

impl TracePipe {
    /// Opens the trace pipe and starts the reader thread.
    pub fn start(sink: EventSink) -> anyhow::Result<Arc<TracePipe>> {
        let pipe = Arc::new(TracePipe {
            lesson: AtomicU32::new(0),
            seen: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
        let Some((path, file)) = PIPES
            .iter()
            .find_map(|p| File::open(p).ok().map(|f| (*p, f)))
        else {
            // A kernel without tracing at all (arm64 4.4, with no kprobes to trace from):
            // nothing will ever print to a trace pipe, and every lesson that needs one is
            // unsupported there by what it declares it needs.
            crate::console_log(format_args!(
                "no trace pipe ({}): this kernel has no tracing (CONFIG_TRACING)",
                PIPES.join(", ")
            ));
            return Ok(pipe);
        };
        let reader = Arc::clone(&pipe);
        std::thread::Builder::new()
            .name("trace_pipe".into())
            .spawn(move || reader.pump(BufReader::new(file), sink))
            .with_context(|| format!("starting the reader of {path}"))?;
        Ok(pipe)
    }

    /// Lines from now on belong to this lesson; earlier ones are forgotten.
    pub fn set_lesson(&self, lesson: u32) {
        self.lesson.store(lesson, Ordering::SeqCst);
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// See [`crate::Lab::wait_for_trace`].
    pub fn wait_for(&self, needle: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let matching: Vec<String> = seen
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            let now = Instant::now();
            if matching.len() >= count || now >= deadline {
                return matching;
            }
            seen = self
                .arrived
                .wait_timeout(seen, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn pump(&self, mut reader: impl BufRead, sink: EventSink) {
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    crate::console_log(format_args!("reading the trace pipe failed: {e}"));
                    break;
                }
            }
            // Bytes, not text: anything in the guest can write to the trace (trace_marker),
            // and one invalid byte must not end the trace of every later lesson.
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']).to_string();
            // A message that ends in "\n" (as bpf_trace_printk's usually do) leaves an
            // empty line behind it on newer kernels: nothing to show.
            if line.trim().is_empty() {
                continue;
            }
            let lesson = self.lesson.load(Ordering::SeqCst);
            sink.send(&Event::Trace {
                lesson,
                line: line.clone(),
            });
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line);
            self.arrived.notify_all();
        }
    }
}

/// The message a program printed, out of a trace-pipe line: what follows the timestamp
/// and the tag of the function that wrote it (`bpf_trace_printk:` on new kernels, an
/// address such as `0x00000001:` on old ones). The whole line if it has no such parts.
///
/// `            init-1       [000] ...21     4.087576: bpf_trace_printk: Hello World!!`
/// gives `Hello World!!`.
pub fn message(line: &str) -> &str {
    // The task name may hold anything, but the CPU in brackets ends the line's head; the
    // timestamp is the first word that ends in ':' after it, the tag the next.
    let Some(cpu_end) = line.find("] ") else {
        return line;
    };
    let mut rest = &line[cpu_end + 2..];
    for _ in 0..2 {
        match rest.find(": ") {
            Some(at) => rest = &rest[at + 2..],
            None => return line,
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_message_is_what_follows_the_timestamp_and_the_tag() {
        let new = "            init-1       [000] ...21     4.087576: bpf_trace_printk: Hello: you";
        assert_eq!(message(new), "Hello: you");
        let old = "            init-1     [000] .N..     1.402414: 0x00000001: Hello World!!";
        assert_eq!(message(old), "Hello World!!");
        assert_eq!(message("no trace line"), "no trace line");
    }

    #[test]
    fn invalid_utf8_in_the_trace_ends_nothing() {
        let pipe = TracePipe {
            lesson: AtomicU32::new(95),
            seen: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        };
        let channel = Recorder::default();
        let pipe_text: &[u8] = b"first\n\xff\xfe\xc3( bad bytes\r\nstill read\n";
        pipe.pump(pipe_text, EventSink::new(Box::new(channel.clone())));
        let seen = pipe.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            ["first", "\u{fffd}\u{fffd}\u{fffd}( bad bytes", "still read"]
        );
        let sent = String::from_utf8(channel.0.lock().unwrap().clone()).unwrap();
        let traces: Vec<Event> = sent.lines().filter_map(Event::from_line).collect();
        assert_eq!(traces.len(), 3, "{sent}");
        assert_eq!(
            traces[2],
            Event::Trace {
                lesson: 95,
                line: "still read".into()
            }
        );
    }
}
