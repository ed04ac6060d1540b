//! Part histogram: message sizes in power-of-two buckets, printed as BCC's tools print
//! them.

use anyhow::Context as _;
use aya::maps::Array;
use bpflab_guest::histogram::{log2_bucket, log2_lines};
use bpflab_guest::{Lab, Outcome};

use super::common::{attach_to_sendmsg, send_sizes};

/// How many messages the workload sends into each bucket, from bucket 0 (0 and 1 byte)
/// up: a shape that reads at a glance.
const PER_BUCKET: [u64; 9] = [1, 2, 4, 8, 12, 8, 4, 2, 1];
/// `max_entries` of `size_log2`: a bucket for every u64.
const BUCKETS: u32 = 64;

/// The messages: in bucket b, sizes spread evenly from 2^b up.
fn sizes() -> Vec<u64> {
    PER_BUCKET
        .iter()
        .enumerate()
        .flat_map(|(bucket, &n)| {
            let low = 1u64 << bucket;
            let step = (low / n).max(1);
            (0..n).map(move |i| low + i * step)
        })
        .collect()
}

pub fn histogram(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part histogram: message sizes in power-of-two buckets, kept by the program");
    let bpf = attach_to_sendmsg(lab, "histogram.bpf.o", "size_histogram")?;
    let sizes = sizes();
    send_sizes(&sizes)?;
    lab.print(format!(
        "sent {} messages of 1 to {} bytes",
        sizes.len(),
        sizes.iter().max().copied().unwrap_or(0)
    ));
    let map: Array<_, u64> = Array::try_from(bpf.map("size_log2").context("no map `size_log2`")?)?;
    let counts: Vec<u64> = (0..BUCKETS)
        .map(|b| map.get(&b, 0))
        .collect::<Result<_, _>>()?;
    for line in log2_lines(&counts, "bytes") {
        lab.print(line);
    }
    // The buckets the sizes sent fall in, worked out here rather than by the program.
    let mut expected = vec![0u64; BUCKETS as usize];
    for &size in &sizes {
        expected[log2_bucket(size)] += 1;
    }
    Ok(match counts == expected {
        true => Outcome::Passed(format!(
            "histogram: {} messages, each in the bucket of its size",
            sizes.len()
        )),
        false => Outcome::Failed(format!(
            "histogram: buckets {:?}, but the sizes sent fall in {:?}",
            trimmed(&counts),
            trimmed(&expected)
        )),
    })
}

/// The buckets up to the last that is not empty.
fn trimmed(counts: &[u64]) -> &[u64] {
    let end = counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
    &counts[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workload_fills_each_bucket_as_planned() {
        let mut per_bucket = [0u64; 9];
        for size in sizes() {
            per_bucket[log2_bucket(size)] += 1;
        }
        assert_eq!(per_bucket, PER_BUCKET);
    }
}
