//! The agent's side of the event channel.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bpflab_protocol::Event;

/// Sends events to the host. Cheap to clone; lines from several threads never interleave.
#[derive(Clone)]
pub struct EventSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl EventSink {
    /// Wraps the channel device (or anything else that takes bytes).
    pub fn new(out: Box<dyn Write + Send>) -> EventSink {
        EventSink {
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// Swaps the channel for a freshly opened one. Needed after a shell session on the
    /// console ends: the kernel hangs the terminal up, and every descriptor opened on it
    /// before fails from then on.
    pub fn replace(&self, out: Box<dyn Write + Send>) {
        *self.out.lock().unwrap_or_else(|e| e.into_inner()) = out;
    }

    /// Sends one event. A broken channel cannot be reported anywhere but the console, so
    /// that is where a failure goes.
    pub fn send(&self, event: &Event) {
        let line = event.to_line();
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
            crate::console_log(format_args!("cannot write to the event channel: {e}"));
        }
    }
}
