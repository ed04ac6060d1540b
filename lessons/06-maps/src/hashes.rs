//! Parts hash and lru-hash: 16 entries keyed by message size, filled past their size.

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::maps::{Array, HashMap};
use aya::Ebpf;
use bpflab_guest::{Lab, Outcome};

use super::common::{attach_to_sendmsg, send_sizes};

/// `max_entries` of both maps.
const ENTRIES: u64 = 16;
/// Sizes sent again once the map is full, before the new ones: their keys are used again.
const USED_AGAIN: u64 = 4;
/// Sizes past the map's size.
const EXTRA: u64 = 8;
/// The kernel's E2BIG: "argument list too long", a full map's answer.
const E2BIG: i64 = 7;

/// What the workload sends: 1 to 16 (filling the map), 1 to 4 again, 17 to 24.
fn sizes() -> Vec<u64> {
    (1..=ENTRIES)
        .chain(1..=USED_AGAIN)
        .chain(ENTRIES + 1..=ENTRIES + EXTRA)
        .collect()
}

/// What the map holds, and what the program says it refused.
struct Seen {
    kept: BTreeMap<u64, u64>,
    refused: i64,
    last_error: i64,
}

fn read(bpf: &Ebpf, map: &str) -> anyhow::Result<Seen> {
    let hash: HashMap<_, u64, u64> =
        HashMap::try_from(bpf.map(map).with_context(|| format!("no map `{map}`"))?)?;
    let kept = hash.iter().collect::<Result<BTreeMap<_, _>, _>>()?;
    let refused: Array<_, i64> = Array::try_from(bpf.map("refused").context("no map `refused`")?)?;
    Ok(Seen {
        kept,
        refused: refused.get(&0, 0)?,
        last_error: refused.get(&1, 0)?,
    })
}

/// Sends the workload through `object`'s program and prints what its map kept.
fn fill(lab: &mut Lab, object: &str, function: &str, map: &str) -> anyhow::Result<Seen> {
    let bpf = attach_to_sendmsg(lab, object, function)?;
    let sizes = sizes();
    send_sizes(&sizes)?;
    lab.print(format!(
        "sent {} messages, sizes 1 to {ENTRIES}, 1 to {USED_AGAIN} again, then {} to {}",
        sizes.len(),
        ENTRIES + 1,
        ENTRIES + EXTRA
    ));
    let seen = read(&bpf, map)?;
    let counts: Vec<String> = seen.kept.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    lab.print(format!(
        "{} keys (size:count): {}",
        seen.kept.len(),
        counts.join(" ")
    ));
    Ok(seen)
}

/// The count each kept size must have: the sizes sent again twice, the others once.
fn count_of(size: u64) -> u64 {
    match size <= USED_AGAIN {
        true => 2,
        false => 1,
    }
}

pub fn hash(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part hash: 16 entries, keyed by message size");
    let seen = fill(lab, "hash.bpf.o", "count_in_hash", "sizes_hash")?;
    let error = match seen.last_error {
        e if e == -E2BIG => format!("{e} (E2BIG)"),
        e => e.to_string(),
    };
    lab.print(format!(
        "{} inserts refused, the last with error {error}: the map was full",
        seen.refused
    ));
    // The first 16 sizes fit; the next 8 cannot be inserted into a full map.
    let expected: BTreeMap<u64, u64> = (1..=ENTRIES).map(|k| (k, count_of(k))).collect();
    let right = seen.kept == expected && seen.refused == EXTRA as i64;
    Ok(match right && seen.last_error == -E2BIG {
        true => Outcome::Passed(format!(
            "hash: sizes 1 to {ENTRIES} kept with their counts, {EXTRA} new ones refused (E2BIG)"
        )),
        false => Outcome::Failed(format!(
            "hash: kept {:?} and refused {} (error {}), but a full map of {ENTRIES} keeps \
             the first {ENTRIES} sizes and refuses the {EXTRA} after them with -E2BIG",
            seen.kept, seen.refused, seen.last_error
        )),
    })
}

pub fn lru_hash(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part lru-hash: the same program on an LRU hash of 16 entries");
    lab.require_part("lru-hash")?;
    let seen = fill(lab, "lru_hash.bpf.o", "count_in_lru", "sizes_lru")?;
    let inserted: Vec<u64> = (1..=ENTRIES + EXTRA).collect();
    let evicted: Vec<u64> = inserted
        .iter()
        .copied()
        .filter(|k| !seen.kept.contains_key(k))
        .collect();
    lab.print(format!(
        "{} evicted: {}; {} inserts refused",
        evicted.len(),
        runs(&evicted),
        seen.refused
    ));
    let problem = lru_problem(&seen, &evicted);
    Ok(match problem {
        None => Outcome::Passed(format!(
            "lru-hash: every insert taken, {} keys evicted, the least recently used ({}); the \
             {USED_AGAIN} used again kept",
            evicted.len(),
            runs(&evicted)
        )),
        Some(problem) => Outcome::Failed(format!("lru-hash: {problem}")),
    })
}

/// What an LRU hash must have done, however many keys it evicts at once (the kernel frees
/// them in batches, and how big a batch is has changed): taken every insert, kept no more
/// than it has room for, with their true counts, kept the keys used again, and evicted
/// the others oldest first.
fn lru_problem(seen: &Seen, evicted: &[u64]) -> Option<String> {
    if seen.refused != 0 {
        return Some(format!(
            "{} inserts refused: an LRU hash makes room",
            seen.refused
        ));
    }
    if seen.kept.len() as u64 > ENTRIES {
        return Some(format!(
            "{} keys kept in {ENTRIES} entries",
            seen.kept.len()
        ));
    }
    if let Some((k, n)) = seen.kept.iter().find(|&(&k, &n)| n != count_of(k)) {
        return Some(format!("size {k} counted {n} times, sent {}", count_of(*k)));
    }
    if let Some(k) = (1..=USED_AGAIN).find(|k| !seen.kept.contains_key(k)) {
        return Some(format!("size {k} was used again, yet evicted"));
    }
    // Never used again, oldest first: 5, 6, 7, ... in the order they were inserted.
    let oldest_first: Vec<u64> = (USED_AGAIN + 1..).take(evicted.len()).collect();
    if evicted != oldest_first {
        return Some(format!(
            "evicted {}, but the least recently used are {}",
            runs(evicted),
            runs(&oldest_first)
        ));
    }
    None
}

/// "1 to 4, 17": sizes as runs of consecutive numbers, for the learner to read.
fn runs(sizes: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &size in sizes {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == size => *end = size,
            _ => runs.push((size, size)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(start, end)| match start == end {
            true => start.to_string(),
            false => format!("{start} to {end}"),
        })
        .collect();
    match text.is_empty() {
        true => "none".to_string(),
        false => text.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_sizes_read_as_ranges() {
        assert_eq!(runs(&[1, 2, 3, 4, 17, 19, 20]), "1 to 4, 17, 19 to 20");
        assert_eq!(runs(&[]), "none");
    }
}
