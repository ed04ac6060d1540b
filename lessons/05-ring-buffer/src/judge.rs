//! Judging a run against what the workload sent, and printing what each round found.

use bpflab_guest::{Lab, Outcome};

use super::channel::{Drained, Event};
use super::rounds::{Rounds, FLOOD, IN_STEP};

/// "102 samples, 4 to 105 bytes, in order": what a drain held, as read.
fn seen(drained: &Drained, noun: &str) -> String {
    let sizes = drained.sizes();
    let (Some(first), Some(last)) = (sizes.first(), sizes.last()) else {
        return format!("no {noun}");
    };
    let consecutive = sizes.windows(2).all(|w| w[1] == w[0] + 1);
    let order = match (sizes.len(), consecutive) {
        (1, _) => String::new(),
        (_, true) => ", in order".to_string(),
        (_, false) => format!(", in this order: {sizes:?}"),
    };
    let range = match first == last {
        true => format!("{first} bytes"),
        false => format!("{first} to {last} bytes"),
    };
    let noun = match sizes.len() {
        1 => noun.trim_end_matches('s'),
        _ => noun,
    };
    format!("{} {noun}, {range}{order}", sizes.len())
}

/// Prints what each round found, and compares it with what the workload sent and what a
/// buffer holding `capacity` events lets through. `dropped` is the program's own count of
/// refused events (the ring buffer's part); without it, the kernel's lost records are
/// what must account for them (the perf buffer's).
pub fn judge(
    lab: &Lab,
    part: &str,
    rounds: &Rounds,
    capacity: usize,
    dropped: Option<u64>,
) -> Outcome {
    let noun = match dropped {
        None => "samples",
        Some(_) => "records",
    };
    let read: Vec<String> = rounds
        .in_step
        .iter()
        .map(|d| {
            d.sizes()
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    lab.print(format!(
        "in step: {IN_STEP} messages of 1 to {IN_STEP} bytes, read after each send: {}",
        read.iter()
            .map(|r| format!("[{r}]"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let flood_sizes = (IN_STEP + 1, IN_STEP + FLOOD);
    let untold = match rounds.flood.lost {
        0 => "nothing said of the rest".to_string(),
        n => format!("{n} reported lost"),
    };
    lab.print(format!(
        "flood: {FLOOD} messages of {} to {} bytes, read after the last: {}; {untold}",
        flood_sizes.0,
        flood_sizes.1,
        seen(&rounds.flood, noun)
    ));
    let last = IN_STEP + FLOOD + 1;
    let after = match (rounds.after.lost, rounds.after.lost_at) {
        (0, _) => seen(&rounds.after, noun),
        (n, Some(0)) => format!(
            "first a lost record ({n} lost), then {}",
            seen(&rounds.after, noun)
        ),
        (n, _) => format!(
            "{}, and a lost record ({n} lost)",
            seen(&rounds.after, noun)
        ),
    };
    lab.print(format!(
        "one more message, of {last} bytes, once the buffer was read: {after}"
    ));
    if let Some(dropped) = dropped {
        lab.print(format!(
            "the program's own count of refused reservations (map `dropped`): {dropped}"
        ));
    }
    let problems = problems(rounds, capacity, dropped);
    let received: usize = rounds.in_step.iter().map(|d| d.events.len()).sum::<usize>()
        + rounds.flood.events.len()
        + rounds.after.events.len();
    let missing = FLOOD.saturating_sub(capacity as u64);
    let sent = IN_STEP + FLOOD + 1;
    if problems.is_empty() {
        let accounted = match dropped {
            None => "lost by the kernel's count",
            Some(_) => "refused by the program's count",
        };
        Outcome::Passed(format!(
            "{part}: {sent} messages, {received} {noun} in order from the sending thread, \
             {missing} {accounted}, as {capacity} fit"
        ))
    } else {
        Outcome::Failed(format!("{part}: {}", problems.join("; ")))
    }
}

/// How the rounds differ from what the workload sent through a buffer of `capacity`.
fn problems(rounds: &Rounds, capacity: usize, dropped: Option<u64>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |what: &str, got: Vec<u64>, want: Vec<u64>| {
        if got != want {
            problems.push(format!(
                "{what}: sizes {got:?}, but {want:?} were sent and fit"
            ));
        }
    };
    for (i, drained) in rounds.in_step.iter().enumerate() {
        expect("in step", drained.sizes(), vec![i as u64 + 1]);
    }
    let kept = (capacity as u64).min(FLOOD);
    expect(
        "flood",
        rounds.flood.sizes(),
        (IN_STEP + 1..=IN_STEP + kept).collect(),
    );
    expect("after", rounds.after.sizes(), vec![IN_STEP + FLOOD + 1]);
    let missing = FLOOD - kept;
    let (reported, where_) = (rounds.after.lost, rounds.after.lost_at);
    match dropped {
        // The kernel reports a loss in the buffer, once there is room for the report:
        // before the first sample written after the buffer was read.
        None if rounds.flood.lost != 0
            || reported != missing
            || (missing > 0 && where_ != Some(0)) =>
        {
            problems.push(format!(
                "{missing} samples did not fit, but the kernel reported {} lost during the \
                 flood and {reported} after it (before sample {where_:?})",
                rounds.flood.lost
            ))
        }
        Some(count) if count != missing || reported != 0 || rounds.flood.lost != 0 => problems
            .push(format!(
                "{missing} events did not fit, but the program counted {count} refused and the \
                 buffer reported {} lost",
                reported + rounds.flood.lost
            )),
        _ => {}
    }
    let all: Vec<&Option<Event>> = rounds
        .in_step
        .iter()
        .chain([&rounds.flood, &rounds.after])
        .flat_map(|d| &d.events)
        .collect();
    if all.iter().any(|e| e.is_none()) {
        problems.push("a record too short to be an event".to_string());
    }
    let events: Vec<&Event> = all.into_iter().flatten().collect();
    let (pid, tid) = rounds.sender;
    if let Some(e) = events.iter().find(|e| (e.pid, e.tid) != (pid, tid)) {
        problems.push(format!(
            "an event from pid {} tid {}, but every message was sent by pid {pid} tid {tid}",
            e.pid, e.tid
        ));
    }
    if events.windows(2).any(|w| w[1].ts_ns < w[0].ts_ns) {
        problems.push("events read out of the order they were sent in".to_string());
    }
    problems
}
