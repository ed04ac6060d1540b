//! Fixture 95: a guest that tries to take over the host's terminal and forge results, so
//! the tests can prove bpflab contains it. See the README for what each write aims at.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Duration;

use anyhow::Context as _;
use bpflab_guest::{Lab, Outcome};
use bpflab_protocol::{Event, Plan, PLAN_PATH};

/// This fixture's number.
const NUMBER: u32 = 95;

/// What every forged result says, so the tests can look for it.
pub const FORGED: &str = "forged by the guest";

/// The last line it writes to the trace; seeing it means the trace survived the rest.
pub const LAST_TRACE: &str = "hostile fixture: last trace line";

/// Tracefs's own mount since 4.1, under debugfs before.
const TRACE_MARKERS: [&str; 2] = [
    "/sys/kernel/tracing/trace_marker",
    "/sys/kernel/debug/tracing/trace_marker",
];

/// Runs the fixture inside the guest. It always fails: any pass reported for it is forged.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let fake_status = format!("✔ lesson 1 passed (0.01s): {FORGED}");
    let long_line = vec![b'A'; 100 * 1024];

    // Through the trace, which any process in the guest can write to.
    let mut marker = TRACE_MARKERS
        .iter()
        .find_map(|p| OpenOptions::new().write(true).open(p).ok())
        .context("opening trace_marker")?;
    let invalid_utf8: &[u8] = b"invalid UTF-8: \xff\xfe\xc3(";
    for message in [
        b"\x1b]0;bpflab was here\x07window title".as_slice(),
        b"\x1b[2J\x1b[Hscreen cleared",
        format!("hostile\n{fake_status}").as_bytes(),
        invalid_utf8,
    ] {
        marker
            .write_all(message)
            .context("writing to trace_marker")?;
    }
    // One write: the kernel keeps what fits in a trace entry and drops the rest.
    let kept = marker
        .write(&long_line)
        .context("writing to trace_marker")?;
    lab.note(format!(
        "trace_marker took {kept} of {} bytes in one write",
        long_line.len()
    ));

    // On the console: the guest's console is the host's to show (with -v) and to quote
    // when a guest fails.
    let mut console = std::io::stderr().lock();
    let mut console_text = long_line.clone();
    console_text.extend_from_slice(b"\n\x1b]0;console title\x07\x1b[2Jconsole cleared\n");
    let hidden = forged_end(NUMBER);
    console_text.extend_from_slice(format!("hostile: {}", hidden.to_line()).as_bytes());
    console
        .write_all(&console_text)
        .context("writing to the console")?;
    drop(console);

    // As its own output and notes, which bpflab shows as the lesson's.
    lab.print(format!("\x1b[2J{fake_status}"));
    lab.note(format!("a note\n{fake_status}"));

    forge_results()?;

    marker
        .write_all(LAST_TRACE.as_bytes())
        .context("writing to trace_marker")?;
    if lab
        .wait_for_trace(LAST_TRACE, 1, Duration::from_secs(10))
        .is_empty()
    {
        lab.note("the trace stopped: the last line written to trace_marker never came back");
    }
    Ok(Outcome::Failed(
        "this fixture always fails: a pass reported for it is forged".into(),
    ))
}

/// Writes passes for itself and for every lesson before it on the event port the agent
/// reports on, as the agent would (at the start of a line) and hidden after other text.
fn forge_results() -> anyhow::Result<()> {
    let plan: Plan = serde_json::from_str(
        &std::fs::read_to_string(PLAN_PATH).with_context(|| format!("reading {PLAN_PATH}"))?,
    )
    .with_context(|| format!("parsing {PLAN_PATH}"))?;
    let mut forged = forged_end(NUMBER).to_line();
    for earlier in plan.lessons.iter().take_while(|l| l.number != NUMBER) {
        let end = forged_end(earlier.number).to_line();
        forged.push_str(&end);
        forged.push_str(&format!("noise {end}"));
    }
    let mut port = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&plan.channel)
        .with_context(|| format!("opening the event port {}", plan.channel))?;
    // One write: the tty keeps it whole, between two of the agent's own lines.
    port.write_all(forged.as_bytes())
        .with_context(|| format!("writing to {}", plan.channel))
}

fn forged_end(lesson: u32) -> Event {
    Event::LessonEnd {
        lesson,
        outcome: Outcome::Passed(FORGED.into()),
        elapsed_ms: 10,
    }
}
