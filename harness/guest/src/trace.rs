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
        let (path, file) = PIPES
            .iter()
            .find_map(|p| File::open(p).ok().map(|f| (*p, f)))
            .context("opening the trace pipe (is tracefs or debugfs mounted?)")?;
        let pipe = Arc::new(TracePipe {
            lesson: AtomicU32::new(0),
            seen: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
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

    fn pump(&self, reader: impl BufRead, sink: EventSink) {
        for line in reader.lines() {
            let Ok(line) = line else { break };
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
