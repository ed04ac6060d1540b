//! Turning a lesson's output into a snapshot that stays the same from run to run.
//!
//! All the rules live here. What changes between runs of the same lesson on the same
//! kernel is replaced by a placeholder; what the lesson is about stays exact:
//!
//! | what                               | becomes             |
//! |------------------------------------|---------------------|
//! | trace line task name and pid       | `<task>-<pid>`      |
//! | trace line CPU, flags, timestamp   | `[<cpu>] <flags> <time>` |
//! | the trace function tag (`bpf_trace_printk:` on new kernels, `0:` or an address on old ones) | `bpf_trace_printk:` |
//! | kernel addresses (`0xffff…`, 8+ hex digits) | `0x<addr>`  |
//! | bare 64-bit kernel addresses (`ffffffff812dca9d`) | `<addr>` |
//! | `pid N`, `tid N`                   | `pid <pid>`         |
//! | durations (`12 ms`, `3.5us`, `2s`) | `<dur>`             |
//! | `+0x12` offsets after a symbol     | `+0x<off>`          |
//! | ports after an IPv4 address (`127.0.0.1:52558`) | `127.0.0.1:<port>` |
//! | bpftool's ids (`12: kprobe  name`, `id 12`, `map_ids 4`, `btf_id 9`, `map[id:4]`) | `<id>` |
//! | bpftool's `loaded_at 2026-12-01T23:44:28+0000` | `loaded_at <time>` |
//!
//! Counts (`tcp_sendmsg: 10`, `3 greetings`) are never touched: they are what the tests
//! assert.

use std::sync::LazyLock;

use bpflab_protocol::Event;
use regex_lite::Regex;

use crate::run::LessonResult;

/// A trace-pipe line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine<'a> {
    /// Task name (`comm`).
    pub task: &'a str,
    /// Process id.
    pub pid: u32,
    /// CPU number.
    pub cpu: u32,
    /// The message the program printed.
    pub message: &'a str,
}

static TRACE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?:\S{4,5}\s+)?(?P<ts>\d+\.\d+):\s+(?P<tag>[^:\s]+):\s?(?P<msg>.*)$",
    )
    .expect("valid regex")
});
static ADDR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"0x[0-9a-fA-F]{8,}").expect("valid regex"));
static BARE_ADDR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bffff[0-9a-f]{12}\b").expect("valid regex"));
static OFFSET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+0x[0-9a-fA-F]+").expect("valid regex"));
static PID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(pid|tid)[ =:]+\d+").expect("valid regex"));
static PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,3}(?:\.\d{1,3}){3}):\d+").expect("valid regex"));
// An object's id is the kernel's next free number, which depends on what loaded before.
// (Not the verifier's `id=1`: those number a program's own pointers, and do not vary.)
static BPF_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(id|btf_id|map_ids|prog_ids)([ :])\d+").expect("valid regex"));
static BPF_ID_LEAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d+(: [a-z_]+  name )").expect("valid regex"));
static LOADED_AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bloaded_at \S+").expect("valid regex"));
static DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d+(\.\d+)?\s?(ns|us|usec|µs|ms|s)\b").expect("valid regex"));

/// Parses a line of `trace_pipe`.
pub fn parse_trace(line: &str) -> Option<TraceLine<'_>> {
    let c = TRACE.captures(line)?;
    Some(TraceLine {
        task: c.name("task")?.as_str(),
        pid: c.name("pid")?.as_str().parse().ok()?,
        cpu: c.name("cpu")?.as_str().parse().ok()?,
        message: c.name("msg")?.as_str(),
    })
}

/// A trace line with everything that varies replaced.
pub fn trace(line: &str) -> String {
    match parse_trace(line) {
        Some(t) => format!(
            "<task>-<pid> [<cpu>] <flags> <time>: bpf_trace_printk: {}",
            text(t.message.trim_end())
        ),
        None => text(line),
    }
}

/// Free text (notes, output lines) with addresses, pids and durations replaced.
pub fn text(s: &str) -> String {
    let s = BPF_ID.replace_all(s, "$1$2<id>");
    let s = BPF_ID_LEAD.replace(&s, "<id>$1");
    let s = LOADED_AT.replace_all(&s, "loaded_at <time>");
    let s = ADDR.replace_all(&s, "0x<addr>");
    let s = BARE_ADDR.replace_all(&s, "<addr>");
    let s = OFFSET.replace_all(&s, "+0x<off>");
    let s = PID.replace_all(&s, "$1 <$1>");
    let s = PORT.replace_all(&s, "$1:<port>");
    DURATION.replace_all(&s, "<dur>").into_owned()
}

/// The snapshot text of one lesson's run.
pub fn transcript(lesson: &LessonResult) -> String {
    transcript_with(lesson, false)
}

/// [`transcript`], with each run of output lines shown as the set of its distinct lines,
/// sorted, when `collapse` is set (see `snapshot_collapse` in a lesson's `lesson.toml`):
/// how many lines a map walk prints, and in what order it meets them, can depend on the
/// kernel's caches and its hash, not on the lesson.
pub fn transcript_with(lesson: &LessonResult, collapse: bool) -> String {
    let text = full_transcript(lesson);
    if !collapse {
        return text;
    }
    let mut out = String::new();
    let mut block = std::collections::BTreeSet::new();
    let flush = |block: &mut std::collections::BTreeSet<&str>, out: &mut String| {
        for line in std::mem::take(block) {
            out.push_str(line);
            out.push('\n');
        }
    };
    for line in text.lines() {
        if line.starts_with("output: ") {
            block.insert(line);
            continue;
        }
        flush(&mut block, &mut out);
        out.push_str(line);
        out.push('\n');
    }
    flush(&mut block, &mut out);
    out
}

fn full_transcript(lesson: &LessonResult) -> String {
    let mut out = format!("lesson {} ({})\n", lesson.number, lesson.name);
    for event in &lesson.events {
        let line = match event {
            Event::Note { text: t, .. } => format!("note: {}", text(t)),
            Event::Output { line, .. } => format!("output: {}", text(line)),
            Event::Trace { line, .. } => format!("trace: {}", trace(line)),
            Event::LessonEnd { outcome, .. } => {
                format!("{}: {}", outcome.word(), text(outcome.reason()))
            }
            _ => continue,
        };
        out.push_str(&line);
        out.push('\n');
    }
    if !lesson
        .events
        .iter()
        .any(|e| matches!(e, Event::LessonEnd { .. }))
    {
        out.push_str(&format!(
            "{}: {}\n",
            lesson.outcome.word(),
            text(lesson.outcome.reason())
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpflab_protocol::Outcome;

    #[test]
    fn parses_trace_lines_of_new_and_old_kernels() {
        let new =
            "            init-1       [000] d..31     2.345678: bpf_trace_printk: Hello World!!";
        let t = parse_trace(new).unwrap();
        assert_eq!(
            (t.task, t.pid, t.cpu, t.message),
            ("init", 1, 0, "Hello World!!")
        );
        let old = "           <...>-1234  [001] ....   123.456789: 0: Hello World!!";
        let t = parse_trace(old).unwrap();
        assert_eq!(
            (t.task, t.pid, t.cpu, t.message),
            ("<...>", 1234, 1, "Hello World!!")
        );
        let with_tgid = "  kworker/u2:1-45    (   45) [000] d..3  9.000001: bpf_trace_printk: hi";
        assert_eq!(parse_trace(with_tgid).unwrap().task, "kworker/u2:1");
        assert_eq!(parse_trace("not a trace line"), None);
    }

    #[test]
    fn trace_lines_lose_what_varies_and_keep_the_message() {
        let a = trace(
            "            init-1       [000] d..31     2.345678: bpf_trace_printk: Hello World!!",
        );
        let b = trace("           <...>-77  [001] ....   9.1: 0: Hello World!!");
        assert_eq!(a, b);
        assert_eq!(
            a,
            "<task>-<pid> [<cpu>] <flags> <time>: bpf_trace_printk: Hello World!!"
        );
    }

    #[test]
    fn text_keeps_counts_and_hides_addresses_pids_durations() {
        assert_eq!(text("tcp_sendmsg: 10"), "tcp_sendmsg: 10");
        assert_eq!(
            text("obj 0xffff888003a1b2c0 is 2sec old was allocated at ip ffffffff81234567"),
            "obj 0x<addr> is 2sec old was allocated at ip <addr>"
        );
        assert_eq!(text("at __alloc_skb+0x5a"), "at __alloc_skb+0x<off>");
        assert_eq!(text("pid 123 sent"), "pid <pid> sent");
        assert_eq!(
            text("tcp_time: 0.052 ms, size: 100"),
            "tcp_time: <dur>, size: 100"
        );
        assert_eq!(
            text("3 processes created, 3 greetings"),
            "3 processes created, 3 greetings"
        );
    }

    #[test]
    fn bpftools_ids_and_load_times_are_hidden_its_sizes_kept() {
        assert_eq!(
            text("12: kprobe  name count_calls  tag 6e1a2c  gpl"),
            "<id>: kprobe  name count_calls  tag 6e1a2c  gpl"
        );
        assert_eq!(
            text("\tloaded_at 2026-12-01T23:44:28+0000  uid 0"),
            "\tloaded_at <time>  uid 0"
        );
        assert_eq!(
            text("\txlated 120B  jited 77B  memlock 4096B  map_ids 4\tbtf_id 9"),
            "\txlated 120B  jited 77B  memlock 4096B  map_ids <id>\tbtf_id <id>"
        );
        assert_eq!(
            text("   4: (18) r1 = map[id:4]"),
            "   4: (18) r1 = map[id:<id>]"
        );
        assert_eq!(text("   0: (b7) r1 = 0"), "   0: (b7) r1 = 0");
        let verifier = "R0_w=map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0)";
        assert_eq!(text(verifier), verifier);
    }

    #[test]
    fn collapsing_shows_each_run_of_output_as_its_distinct_lines_sorted() {
        let line = |t: &str| Event::Output {
            lesson: 3,
            line: t.into(),
        };
        let lesson = LessonResult {
            number: 3,
            name: "t".into(),
            outcome: Outcome::Passed("ok".into()),
            events: vec![
                line("obj 0xffff888000000001 a"),
                line("obj 0xffff888000000002 a"),
                line("b"),
                line("obj 0xffff888000000003 a"),
                Event::Note {
                    lesson: 3,
                    text: "between".into(),
                },
                line("obj 0xffff888000000004 a"),
            ],
        };
        assert_eq!(
            transcript_with(&lesson, true),
            "lesson 3 (t)\noutput: b\noutput: obj 0x<addr> a\nnote: between\noutput: obj 0x<addr> a\npass: ok\n"
        );
        assert_eq!(transcript_with(&lesson, false).lines().count(), 8);
    }

    #[test]
    fn a_transcript_lists_events_in_order_and_ends_with_the_outcome() {
        let lesson = LessonResult {
            number: 1,
            name: "hello".into(),
            outcome: Outcome::Passed("ok".into()),
            events: vec![
                Event::LessonStart { lesson: 1 },
                Event::Note {
                    lesson: 1,
                    text: "kprobe attached to __x64_sys_clone".into(),
                },
                Event::Trace {
                    lesson: 1,
                    line: "init-1 [000] d..31 2.3: bpf_trace_printk: Hello World!!".into(),
                },
                Event::LessonEnd {
                    lesson: 1,
                    outcome: Outcome::Passed("ok".into()),
                    elapsed_ms: 12,
                },
            ],
        };
        assert_eq!(
            transcript(&lesson),
            "lesson 1 (hello)\nnote: kprobe attached to __x64_sys_clone\n\
             trace: <task>-<pid> [<cpu>] <flags> <time>: bpf_trace_printk: Hello World!!\npass: ok\n"
        );
    }
}
