//! What lessons 5 to 7, their exercises as shipped and the exercises' solutions must show,
//! on any kernel and arch that runs them. The numbers come from the workloads (which sizes were sent, how many
//! processes made) and from the kernel's record layouts, not from earlier runs.

use bpflab::run::LessonResult;
use bpflab_protocol::Outcome;

use crate::lesson_events::outputs;

/// Checks lesson `lesson.number` (5, 6, 7, their exercises 501, 601 and 701, or the
/// solutions 51, 61 and 71).
pub fn check(lesson: &LessonResult, where_: &str) {
    if let Some(missing) = unsolved(lesson.number) {
        // As shipped, an exercise's check says what is missing (the lesson tests check
        // that it failed, with "not solved yet: ").
        let reason = lesson.outcome.reason();
        assert!(reason.contains(missing), "{where_}: {reason}");
        return;
    }
    let printed = outputs(lesson);
    let has = |line: &str| {
        assert!(
            printed.contains(&line),
            "{where_}: no line {line:?} in {printed:#?}"
        )
    };
    match lesson.number {
        5 => ring_and_perf_buffers(&has),
        6 => maps(&printed, &has, where_),
        7 => {
            // Three processes: three task_structs, asked for by the fork path (the
            // allocator's caller, or on arm64 its caller's caller: lesson 7 says why).
            let stacks = stacks(&printed);
            assert!(
                stacks
                    .iter()
                    .all(|(frames, _)| frames[0].starts_with("kmem_cache_alloc")),
                "{where_}: {stacks:#?}"
            );
            let from_fork: u64 = stacks
                .iter()
                .filter(|(frames, _)| {
                    let caller = frames.get(1).map_or("", |f| f.split('+').next().unwrap());
                    [
                        "dup_task_struct",
                        "copy_process",
                        "kernel_clone",
                        "_do_fork",
                    ]
                    .contains(&caller)
                })
                .map(|(_, count)| count)
                .sum();
            assert_eq!(from_fork, 3, "{where_}: {stacks:#?}");
        }
        51 => has(
            "sent 40 messages of 1 to 40 bytes; received the events of 20 messages: \
             [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]",
        ),
        61 => {
            // Ten sleeps, each in one bucket of the histogram, whatever their lengths.
            let counted: u64 = histogram_counts(&printed).iter().sum();
            assert_eq!(counted, 10, "{where_}: {printed:#?}");
        }
        71 => {
            // Five messages, one tcp_sendmsg each.
            let stacks = stacks(&printed);
            assert!(
                stacks
                    .iter()
                    .all(|(frames, _)| frames[0].starts_with("tcp_sendmsg+")),
                "{where_}: {stacks:#?}"
            );
            let calls: u64 = stacks.iter().map(|(_, count)| count).sum();
            assert_eq!(calls, 5, "{where_}: {stacks:#?}");
        }
        n => panic!("{where_}: lesson {n} is not one of the toolbox's"),
    }
    assert!(
        matches!(lesson.outcome, Outcome::Passed(_)),
        "{where_}: {:?}",
        lesson.outcome
    );
}

/// What the check of exercise `n` says is missing, as shipped.
fn unsolved(n: u32) -> Option<&'static str> {
    match n {
        501 => Some("the events of all 40 messages arrived, odd sizes too"),
        601 => Some("10 sleeps, and the histogram is empty"),
        701 => Some("the stacks start in kmem_cache_alloc_node"),
        _ => None,
    }
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

/// The workload: sizes 1×1, 2×2, 3×3, 5×5, 7 and 8 for the arrays (slot 1 preset to 100);
/// 1 to 16, 1 to 4 again, 17 to 24 for the hashes of 16 entries; 1, 2, 4, 8, 12, 8, 4, 2,
/// 1 messages in the size buckets 0 to 8.
fn maps(printed: &[&str], has: &dyn Fn(&str), where_: &str) {
    for (slot, count) in [0, 101, 2, 3, 0, 5, 0, 1].iter().enumerate() {
        has(&format!("slot {slot}: {count}"));
    }
    has(
        "16 keys (size:count): 1:2 2:2 3:2 4:2 5:1 6:1 7:1 8:1 9:1 10:1 11:1 12:1 13:1 14:1 \
         15:1 16:1",
    );
    has("8 inserts refused, the last with error -7 (E2BIG): the map was full");
    has(
        "opened again from /sys/fs/bpf/bpflab-lesson6-by_size (BPF_OBJ_GET): slots \
         [0, 1, 2, 3, 0, 5, 0, 1]; pin removed",
    );
    assert_eq!(
        histogram_counts(printed),
        [1, 2, 4, 8, 12, 8, 4, 2, 1],
        "{where_}: {printed:#?}"
    );
    // The LRU hash: the keys used again are kept, the rest evicted oldest first, however
    // many at a time the kernel frees.
    let kept = printed
        .iter()
        .filter(|l| l.contains(" keys (size:count): "))
        .nth(1)
        .unwrap_or_else(|| panic!("{where_}: no LRU keys in {printed:#?}"));
    let kept: Vec<u64> = kept
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .map(|pair| pair.split(':').next().unwrap().parse().unwrap())
        .collect();
    let evicted = 24 - kept.len() as u64;
    let expected: Vec<u64> = (1..=4).chain(5 + evicted..=24).collect();
    assert_eq!(kept, expected, "{where_}: the LRU hash kept {kept:?}");
    assert!(
        evicted >= 8,
        "{where_}: 24 keys in 16 entries, {evicted} evicted"
    );
}

/// The counts of a text histogram's rows (`  low -> high  : count  |***|`), in order.
fn histogram_counts(printed: &[&str]) -> Vec<u64> {
    printed
        .iter()
        .filter(|l| l.contains(" -> ") && l.contains('|'))
        .map(|l| {
            let count = l.split(" : ").nth(1).unwrap();
            count.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

/// The stacks printed as stackcount prints them: frames (`  function+0xoff`, innermost
/// first), then the count (`    3`).
fn stacks(printed: &[&str]) -> Vec<(Vec<String>, u64)> {
    let mut stacks = Vec::new();
    let mut frames = Vec::new();
    for line in printed {
        match line.trim().parse::<u64>() {
            Ok(count) => stacks.push((std::mem::take(&mut frames), count)),
            Err(_) => frames.push(line.trim().to_string()),
        }
    }
    assert!(frames.is_empty(), "frames without a count: {frames:?}");
    stacks
}
