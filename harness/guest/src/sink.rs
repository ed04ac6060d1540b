//! The agent's side of the event channel.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bpflab_protocol::Event;

/// Sends events to the host. Cheap to clone; lines from several threads never interleave.
#[derive(Clone)]
pub struct EventSink {
    /// `None` once the last event went out.
    out: Arc<Mutex<Option<Box<dyn Write + Send>>>>,
}

impl EventSink {
    /// Wraps the channel device (or anything else that takes bytes).
    pub fn new(out: Box<dyn Write + Send>) -> EventSink {
        EventSink {
            out: Arc::new(Mutex::new(Some(out))),
        }
    }

    /// Swaps the channel for a freshly opened one. Needed after a shell session on the
    /// console ends: the kernel hangs the terminal up, and every descriptor opened on it
    /// before fails from then on.
    pub fn replace(&self, out: Box<dyn Write + Send>) {
        let mut slot = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            *slot = Some(out);
        }
    }

    /// Sends one event. A broken channel cannot be reported anywhere but the console, so
    /// that is where a failure goes.
    pub fn send(&self, event: &Event) {
        let mut slot = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(out) = slot.as_mut() {
            write_event(out, event);
        }
    }

    /// Sends `event` as the last one: what any thread sends after it is dropped. The host
    /// takes events after `Done` for a broken protocol, and the trace reader may still be
    /// holding a line when the plan ends.
    pub fn send_last(&self, event: &Event) {
        let mut slot = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut out) = slot.take() {
            write_event(&mut out, event);
        }
    }
}

fn write_event(out: &mut Box<dyn Write + Send>, event: &Event) {
    let line = event.to_line();
    if let Err(e) = out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
        crate::console_log(format_args!("cannot write to the event channel: {e}"));
    }
}
