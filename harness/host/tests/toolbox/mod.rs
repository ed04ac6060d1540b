//! What lesson 5 and its exercise's solution must show, on any kernel and arch that runs
//! them. The numbers come from the workloads (which sizes were sent, how many
//! processes made) and from the kernel's record layouts, not from earlier runs.

use bpflab::run::LessonResult;
use bpflab_protocol::Outcome;

use crate::lesson_events::outputs;

/// Checks lesson `lesson.number` (5 or 51).
pub fn check(lesson: &LessonResult, where_: &str) {
    let printed = outputs(lesson);
    let has = |line: &str| {
        assert!(
            printed.contains(&line),
            "{where_}: no line {line:?} in {printed:#?}"
        )
    };
    match lesson.number {
        5 => ring_and_perf_buffers(&has),
        51 => has(
            "sent 40 messages of 1 to 40 bytes; received the events of 20 messages: \
             [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]",
        ),
        n => panic!("{where_}: lesson {n} is not one of the toolbox's"),
    }
    assert!(
        matches!(lesson.outcome, Outcome::Passed(_)),
        "{where_}: {:?}",
        lesson.outcome
    );
}

/// 24-byte events: 40 bytes in a perf buffer (8 header, 4 length, padded to 8), 32 in a
/// ring buffer (8 header); a 4096-byte buffer keeps one byte free: 102 and 127 fit of
/// the 200 sent in the flood, sizes 4 to 203.
fn ring_and_perf_buffers(has: &dyn Fn(&str)) {
    has("in step: 3 messages of 1 to 3 bytes, read after each send: [1] [2] [3]");
    has(
        "flood: 200 messages of 4 to 203 bytes, read after the last: 102 samples, 4 to 105 \
         bytes, in order; nothing said of the rest",
    );
    has(
        "one more message, of 204 bytes, once the buffer was read: first a lost record (98 \
         lost), then 1 sample, 204 bytes",
    );
    has(
        "flood: 200 messages of 4 to 203 bytes, read after the last: 127 records, 4 to 130 \
         bytes, in order; nothing said of the rest",
    );
    has("one more message, of 204 bytes, once the buffer was read: 1 record, 204 bytes");
    has("the program's own count of refused reservations (map `dropped`): 73");
}
