//! Power-of-two histograms, printed the way BCC's tools and libbpf-tools print them
//! (funclatency, biolatency, bitesize): one row per bucket, `low -> high : count`, and a
//! bar of stars scaled to the fullest bucket.
//!
//! Bucket `b` holds the values whose floor(log2) is `b`, from 2^b to 2^(b+1) - 1; bucket 0
//! also holds 0, as the programs that fill these maps compute it (`log2l(0)` is 0).

/// The width of the bar of the fullest bucket, as BCC's.
const BAR: usize = 40;

/// The bucket of `value`: floor(log2(value)), and 0 for 0.
pub fn log2_bucket(value: u64) -> usize {
    value.checked_ilog2().unwrap_or(0) as usize
}

/// The rows of a histogram of `counts` (bucket `b` at index `b`), from bucket 0 to the
/// last that is not empty, under a header naming the `unit` (`usecs`, `bytes`). Empty
/// when every bucket is.
pub fn log2_lines(counts: &[u64], unit: &str) -> Vec<String> {
    let Some(last) = counts.iter().rposition(|&c| c > 0) else {
        return Vec::new();
    };
    // BCC's bounds are 10 wide for buckets below 2^32, 20 past that.
    let width = if last < 32 { 10 } else { 20 };
    let fullest = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut lines = vec![format!(
        "{:indent$}{unit:<label$} : count    distribution",
        "",
        indent = width - 5,
        label = width + 9
    )];
    for (bucket, &count) in counts.iter().enumerate().take(last + 1) {
        let high = (1u128 << (bucket + 1)) - 1;
        let low = match bucket {
            0 => 0,
            _ => 1u128 << bucket,
        };
        let stars = (count.min(fullest) * BAR as u64 / fullest) as usize;
        lines.push(format!(
            "{low:>width$} -> {high:<width$} : {count:<8} |{}{}|",
            "*".repeat(stars),
            " ".repeat(BAR - stars)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_floor_log2_with_zero_in_the_first() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 1);
        assert_eq!(log2_bucket(4), 2);
        assert_eq!(log2_bucket(1023), 9);
        assert_eq!(log2_bucket(u64::MAX), 63);
    }

    #[test]
    fn rows_look_like_bccs() {
        let lines = log2_lines(&[1, 0, 4, 2], "bytes");
        assert_eq!(
            lines,
            [
                "     bytes               : count    distribution",
                "         0 -> 1          : 1        |**********                              |",
                "         2 -> 3          : 0        |                                        |",
                "         4 -> 7          : 4        |****************************************|",
                "         8 -> 15         : 2        |********************                    |",
            ]
        );
    }

    #[test]
    fn an_empty_histogram_has_no_rows_and_trailing_empty_buckets_are_left_out() {
        assert!(log2_lines(&[0, 0, 0], "usecs").is_empty());
        assert_eq!(log2_lines(&[0, 3, 0, 0], "usecs").len(), 3);
    }

    #[test]
    fn wide_values_get_wide_rows() {
        let mut counts = vec![0; 41];
        counts[40] = 1;
        let lines = log2_lines(&counts, "nsecs");
        assert!(lines[41].starts_with("       1099511627776 -> 2199023255551        : 1"));
    }
}
