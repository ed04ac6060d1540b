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
/// Where the initramfs holds BTF encoded for a kernel that has none of its own (a 4.x
/// kernel bpflab built: pahole turns the build's DWARF into BTF), for CO-RE.
pub const BUILT_BTF_PATH: &str = "/bpflab/vmlinux.btf";
/// Where lesson objects live inside the initramfs: `<LESSONS_DIR>/<lesson dir>/<object>`.
pub const LESSONS_DIR: &str = "/bpflab/lessons";
/// Where kernel modules a lesson asks for (`kernel_modules` in its `lesson.toml`) live in
/// the initramfs, taken from the booted kernel's own package: `<MODULES_DIR>/<name>.ko`.
pub const MODULES_DIR: &str = "/bpflab/modules";
/// Every event line starts with this marker, so a stray line on the channel (there should
/// be none) is recognisable as not ours. Only a line that begins with it is an event: text
/// that merely contains it (a guest process printing it mid-line) is not.
pub const EVENT_MARKER: &str = "@bpflab ";
/// The longest line the host takes from the guest, newline included; it cuts longer ones
/// (so guest output cannot fill its memory), and [`Event::to_line`] shortens events to fit.
pub const MAX_LINE: usize = 64 * 1024;

mod features;
mod referee;
pub use features::Feature;
pub use referee::{Referee, Ruling, Violation};

/// What the host asks the guest to do during one boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Lessons to run, in order. One boot serves them all.
    pub lessons: Vec<LessonPlan>,
    /// Device the agent writes its events to (e.g. `/dev/ttyS1`).
    pub channel: String,
    /// After the lessons, give the learner an interactive shell instead of powering off.
    pub shell: bool,
    /// Probe every feature a lesson can declare and report them ([`Event::Features`]):
    /// the matrix's feature table. Without it, only the lessons' own needs are probed.
    #[serde(default)]
    pub probe_features: bool,
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
    /// What the whole lesson needs of the kernel (its `lesson.toml`'s `needs`): probed
    /// before it runs; a missing one makes it unsupported without running it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<Feature>,
    /// What each part needs besides (`part_needs`): probed when the part starts, so the
    /// other parts still run.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub part_needs: std::collections::BTreeMap<String, Vec<Feature>>,
    /// Kernel modules the lesson needs loaded (its `kernel_modules`), which the agent
    /// loads from [`MODULES_DIR`] before it runs, unless the kernel has them already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_modules: Vec<String>,
    /// Whether the lesson talks over the loopback interface (its `loopback`), which the
    /// agent brings up before it runs. Left down otherwise: bringing it up costs a
    /// lesson that has no use for it about 12 ms under emulation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loopback: bool,
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

    fn reason_mut(&mut self) -> &mut String {
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
    /// What the guest found the kernel has, of every [`Feature`] a lesson can need: probed
    /// once per boot, before the lessons, for the matrix's feature table.
    Features {
        /// The features the kernel has; every other one of [`Feature::ALL`] it lacks.
        present: Vec<Feature>,
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
    /// The lessons are over and the learner's shell (`--shell`) starts; `Done` follows
    /// when it exits.
    ShellStart,
    /// Everything in the plan ran; the guest powers off next.
    Done,
    /// The agent itself failed outside any lesson (mounts, plan, channel).
    AgentError {
        /// What went wrong and, where it helps, what to do.
        message: String,
    },
}

impl Event {
    /// Encodes the event as one channel line (with trailing newline), at most
    /// [`MAX_LINE`] long: an event whose text would not fit (a long verifier log) keeps
    /// the text's beginning and end, and says how much of its middle was cut.
    pub fn to_line(&self) -> String {
        let line = self.encode();
        // Nearly every event fits: only a long one is copied to be cut.
        if line.len() <= MAX_LINE {
            return line;
        }
        let mut event = self.clone();
        let Some(text) = event.text_mut() else {
            return line;
        };
        let original = std::mem::take(text);
        let others = line.len() - json_len(&original);
        let mut budget = MAX_LINE.saturating_sub(others + CUT_NOTE_ROOM);
        loop {
            *event.text_mut().expect("the same event") = middle_cut(&original, budget);
            let line = event.encode();
            match line.len().checked_sub(MAX_LINE) {
                // Only if serde_json escaped more than JSON requires: cut more.
                Some(over) if over > 0 && budget > 0 => budget = budget.saturating_sub(over),
                _ => return line,
            }
        }
    }

    fn encode(&self) -> String {
        // Serialising these plain types cannot fail.
        let json = serde_json::to_string(self).expect("event serialises");
        format!("{EVENT_MARKER}{json}\n")
    }

    /// The event's free text, of any length. (`Ready`'s come from uname: short.)
    fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            Event::Note { text, .. } => Some(text),
            Event::Output { line, .. } | Event::Trace { line, .. } => Some(line),
            Event::LessonEnd { outcome, .. } => Some(outcome.reason_mut()),
            Event::AgentError { message } => Some(message),
            Event::Ready { .. }
            | Event::Features { .. }
            | Event::LessonStart { .. }
            | Event::ShellStart
            | Event::Done => None,
        }
    }

    /// Decodes one channel line. `None` for lines that are not events (noise, partial,
    /// or text with the marker somewhere other than at its start).
    pub fn from_line(line: &str) -> Option<Event> {
        // A serial port may put a NUL or a carriage return before the first line: bytes
        // no guest text can hide behind. Anything else before the marker is text.
        let line = line
            .trim_start_matches(['\0', '\r'])
            .trim_end_matches(['\r', '\n']);
        serde_json::from_str(line.strip_prefix(EVENT_MARKER)?).ok()
    }
}

/// Room for the note [`middle_cut`] leaves where it cut.
const CUT_NOTE_ROOM: usize = 40;

/// The beginning and end of `text` that take at most `budget` bytes in JSON, with a note
/// of how many bytes were cut between them.
fn middle_cut(text: &str, budget: usize) -> String {
    let head_end = prefix_within(text.chars(), budget / 2);
    let tail_len = prefix_within(text[head_end..].chars().rev(), budget - budget / 2);
    let tail_start = text.len() - tail_len;
    format!(
        "{} … [{} bytes cut] … {}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// How many bytes of `chars` fit in `budget` bytes of JSON.
fn prefix_within(chars: impl Iterator<Item = char>, budget: usize) -> usize {
    let mut used = 0;
    let mut bytes = 0;
    for c in chars {
        used += json_char_len(c);
        if used > budget {
            break;
        }
        bytes += c.len_utf8();
    }
    bytes
}

/// Bytes `text` takes inside a JSON string.
fn json_len(text: &str) -> usize {
    text.chars().map(json_char_len).sum()
}

/// Bytes `c` takes inside a JSON string: JSON escapes quotes, backslashes and the C0
/// controls (the common ones in two bytes, the others as `\u00XX`).
fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        '\0'..='\u{1f}' => 6,
        c => c.len_utf8(),
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
    fn serial_noise_before_the_marker_is_tolerated_and_other_lines_ignored() {
        let line = format!("\r\u{0}{}", Event::Done.to_line());
        assert_eq!(Event::from_line(&line), Some(Event::Done));
        assert_eq!(Event::from_line("[    1.234] random: crng init done"), None);
        assert_eq!(Event::from_line("@bpflab {\"event\":\"don"), None);
    }

    #[test]
    fn the_marker_counts_only_at_the_start_of_a_line() {
        let forged = Event::Done.to_line();
        assert_eq!(Event::from_line(&format!("echo {forged}")), None);
        assert_eq!(Event::from_line(&format!(" {forged}")), None);
        assert_eq!(Event::from_line(&format!("[    3.2] {forged}")), None);
    }

    #[test]
    fn an_event_too_long_for_a_line_keeps_its_beginning_and_end() {
        // Control characters take six bytes each in JSON: the worst case for the budget.
        let log = format!("first words{}last words", "\u{1}".repeat(200 * 1024));
        let event = Event::LessonEnd {
            lesson: 90,
            outcome: Outcome::Failed(log.clone()),
            elapsed_ms: 3,
        };
        let line = event.to_line();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(
            line.len() > MAX_LINE - 100,
            "cut more than needed: {}",
            line.len()
        );
        let Some(Event::LessonEnd { outcome, .. }) = Event::from_line(&line) else {
            panic!("the shortened line is not an event: {line:.200}");
        };
        let reason = outcome.reason();
        assert!(reason.starts_with("first words") && reason.ends_with("last words"));
        assert!(reason.contains(" bytes cut] … "), "{reason:.200}");
        let short = Event::Note {
            lesson: 1,
            text: "short".into(),
        };
        assert_eq!(Event::from_line(&short.to_line()), Some(short));
    }

    #[test]
    fn plan_round_trips() {
        let plan = Plan {
            lessons: vec![LessonPlan {
                number: 1,
                name: "hello".into(),
                dir: "01-hello".into(),
                parts: vec![],
                needs: vec![Feature::Kprobes],
                part_needs: [("latency".to_string(), vec![Feature::CoreBtf])].into(),
                kernel_modules: vec!["veth".into()],
                loopback: true,
            }],
            channel: "/dev/ttyS1".into(),
            shell: false,
            fault: Some(Fault::Hang),
            probe_features: true,
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    }
}
