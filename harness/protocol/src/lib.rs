//! What crosses the VM boundary, and nothing else.
//!
//! The host writes a [`Plan`] into the initramfs; the guest agent reads it at boot, runs
//! the lessons it names and answers with a stream of [`Event`]s, one JSON object per line,
//! on a serial port of its own. The kernel's console log travels on a different port, so
//! the host never mistakes kernel noise for lesson output.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// Where the plan lives inside the initramfs.
pub const PLAN_PATH: &str = "/bpflab/plan.json";
/// Where lesson objects live inside the initramfs: `<LESSONS_DIR>/<lesson dir>/<object>`.
pub const LESSONS_DIR: &str = "/bpflab/lessons";
/// Every event line starts with this marker, so a stray line on the channel (there should
/// be none) is recognisable as not ours.
pub const EVENT_MARKER: &str = "@bpflab ";

/// What the host asks the guest to do during one boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Lessons to run, in order. One boot serves them all.
    pub lessons: Vec<LessonPlan>,
    /// Device the agent writes its events to (e.g. `/dev/ttyS1`).
    pub channel: String,
    /// After the lessons, give the learner an interactive shell instead of powering off.
    pub shell: bool,
    /// A failure for the agent to cause on purpose, so tests can prove the host copes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// Failures the agent can be asked to cause (tests of the host's error handling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Crash the kernel (sysrq `c`): the host must report a panic with the console tail.
    KernelPanic,
    /// Stop doing anything: the host's timeout must kill QEMU.
    Hang,
    /// Power off without reporting anything: the host must say no result came.
    Silent,
    /// The agent (init) crashes: the kernel panics ("Attempted to kill init"), and the
    /// host must say the agent crashed.
    AgentCrash,
}

/// One lesson to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonPlan {
    /// Lesson number as the learner types it (`bpflab lesson 1`).
    pub number: u32,
    /// Short name, e.g. `hello`.
    pub name: String,
    /// Directory below [`LESSONS_DIR`] holding the lesson's compiled objects.
    pub dir: String,
    /// Which part(s) to run; empty means all of them.
    pub parts: Vec<String>,
}

/// How a lesson ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// The lesson did what it teaches and its checks held.
    Passed(String),
    /// It ran but a check failed, or it hit an error (the message says which).
    Failed(String),
    /// It cannot run on this kernel (a missing symbol or feature), with the reason.
    Unsupported(String),
}

impl Outcome {
    /// Short word for tables: `pass`, `fail`, `unsupported`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Passed(_) => "pass",
            Outcome::Failed(_) => "fail",
            Outcome::Unsupported(_) => "unsupported",
        }
    }

    /// The explanation carried by the outcome.
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Passed(r) | Outcome::Failed(r) | Outcome::Unsupported(r) => r,
        }
    }
}

/// One thing that happened in the guest, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent is up: what it runs on.
    Ready {
        /// `uname -r` of the guest kernel.
        kernel: String,
        /// `uname -m` of the guest.
        machine: String,
        /// Milliseconds since the guest kernel booted (CLOCK_BOOTTIME) when init started.
        boot_ms: u64,
    },
    /// A lesson begins.
    LessonStart {
        /// Lesson number.
        lesson: u32,
    },
    /// Something the lesson wants the learner to know (which symbol it probed, ...).
    Note {
        /// Lesson number.
        lesson: u32,
        /// The text.
        text: String,
    },
    /// A line the lesson's user-space side printed (like the article's `print`).
    Output {
        /// Lesson number.
        lesson: u32,
        /// The line, without newline.
        line: String,
    },
    /// A raw line from the kernel's trace pipe (what `bpf_trace_printk` wrote).
    Trace {
        /// Lesson number.
        lesson: u32,
        /// The line as the kernel formatted it.
        line: String,
    },
    /// A lesson ended.
    LessonEnd {
        /// Lesson number.
        lesson: u32,
        /// How.
        outcome: Outcome,
        /// Milliseconds the lesson took inside the guest.
        elapsed_ms: u64,
    },
    /// Everything in the plan ran; the guest powers off next.
    Done,
    /// The agent itself failed outside any lesson (mounts, plan, channel).
    AgentError {
        /// What went wrong and, where it helps, what to do.
        message: String,
    },
}

impl Event {
    /// Encodes the event as one channel line (with trailing newline).
    pub fn to_line(&self) -> String {
        // Serialising these plain types cannot fail.
        let json = serde_json::to_string(self).expect("event serialises");
        format!("{EVENT_MARKER}{json}\n")
    }

    /// Decodes one channel line. `None` for lines that are not events (noise, partial).
    pub fn from_line(line: &str) -> Option<Event> {
        let line = line.trim_end_matches(['\r', '\n']);
        let start = line.find(EVENT_MARKER)?;
        serde_json::from_str(&line[start + EVENT_MARKER.len()..]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_a_line() {
        let events = [
            Event::Ready {
                kernel: "6.1.0-53-cloud-amd64".into(),
                machine: "x86_64".into(),
                boot_ms: 1234,
            },
            Event::Trace {
                lesson: 1,
                line: "init-1 [000] d..31 2.3: bpf_trace_printk: Hello World!!".into(),
            },
            Event::LessonEnd {
                lesson: 1,
                outcome: Outcome::Unsupported("no symbol sys_clone".into()),
                elapsed_ms: 5,
            },
            Event::Done,
        ];
        for event in events {
            let line = event.to_line();
            assert!(line.ends_with('\n'));
            assert_eq!(Event::from_line(&line), Some(event));
        }
    }

    #[test]
    fn noise_before_the_marker_is_tolerated_and_other_lines_ignored() {
        let line = format!("\r\u{0}{}", Event::Done.to_line());
        assert_eq!(Event::from_line(&line), Some(Event::Done));
        assert_eq!(Event::from_line("[    1.234] random: crng init done"), None);
        assert_eq!(Event::from_line("@bpflab {\"event\":\"don"), None);
    }

    #[test]
    fn plan_round_trips() {
        let plan = Plan {
            lessons: vec![LessonPlan {
                number: 1,
                name: "hello".into(),
                dir: "01-hello".into(),
                parts: vec![],
            }],
            channel: "/dev/ttyS1".into(),
            shell: false,
            fault: Some(Fault::Hang),
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }
}
