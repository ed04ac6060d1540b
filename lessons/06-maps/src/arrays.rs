//! Parts array and per-cpu-array: eight slots, slot i counting the messages of i bytes.

use anyhow::Context as _;
use aya::maps::{Array, PerCpuArray};
use bpflab_guest::{Lab, Outcome};

use super::common::{attach_to_sendmsg, send_sizes};

/// `max_entries` of both arrays.
pub const SLOTS: usize = 8;

/// What the workload sends: how many messages of each size. 8 bytes has no slot.
pub const ARRAY_SENDS: [(u64, usize); 6] = [(1, 1), (2, 2), (3, 3), (5, 5), (7, 1), (8, 1)];

/// What user space writes into slot 1 before the messages: a map is shared both ways.
const PRESET: u64 = 100;

/// Every message of [`ARRAY_SENDS`], in order.
pub fn array_sizes() -> Vec<u64> {
    ARRAY_SENDS
        .iter()
        .flat_map(|&(size, n)| std::iter::repeat_n(size, n))
        .collect()
}

/// The count each slot must hold after `sizes` were sent: a message of `i` bytes adds
/// one to slot `i`, and a size past the last slot is counted nowhere.
pub fn expected_slots(sizes: &[u64]) -> [u64; SLOTS] {
    let mut slots = [0; SLOTS];
    for &size in sizes {
        if let Some(slot) = slots.get_mut(size as usize) {
            *slot += 1;
        }
    }
    slots
}

/// "1×1, 2×2, 3×3 bytes": the workload, for the learner.
fn sends_text() -> String {
    let sends: Vec<String> = ARRAY_SENDS
        .iter()
        .map(|(size, n)| format!("{n}×{size}"))
        .collect();
    format!("{} bytes", sends.join(", "))
}

pub fn array(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part array: 8 slots, slot i counting the messages of i bytes");
    let mut bpf = attach_to_sendmsg(lab, "array.bpf.o", "count_in_array")?;
    let mut slots: Array<_, u64> =
        Array::try_from(bpf.map_mut("by_size").context("no map `by_size`")?)?;
    slots.set(1, PRESET, 0)?;
    lab.print(format!(
        "user space wrote {PRESET} into slot 1 before any message"
    ));
    let sizes = array_sizes();
    send_sizes(&sizes)?;
    lab.print(format!("sent {} messages: {}", sizes.len(), sends_text()));
    let seen: Vec<u64> = slots.iter().collect::<Result<_, _>>()?;
    for (slot, count) in seen.iter().enumerate() {
        lab.print(format!("slot {slot}: {count}"));
    }
    let mut expected = expected_slots(&sizes);
    expected[1] += PRESET;
    let past_the_end = sizes.iter().filter(|&&s| s as usize >= SLOTS).count();
    lab.print(format!(
        "{past_the_end} message of {SLOTS} bytes or more: no such slot (its lookup returned \
         NULL), counted nowhere"
    ));
    Ok(match seen == expected {
        true => Outcome::Passed(format!(
            "array: {} messages, every slot as sent (slot 1 from {PRESET}), {past_the_end} \
             past the end",
            sizes.len()
        )),
        false => Outcome::Failed(format!(
            "array: slots {seen:?}, but the messages sent make {expected:?}"
        )),
    })
}

pub fn per_cpu_array(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part per-cpu-array: the same count, each CPU with its own copy of every slot");
    lab.require_part("per-cpu-array")?;
    let bpf = attach_to_sendmsg(lab, "per_cpu_array.bpf.o", "count_per_cpu")?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    lab.note(match cpus {
        1 => "1 possible CPU: one value per slot".to_string(),
        n => format!("{n} possible CPUs: {n} values per slot"),
    });
    let sizes = array_sizes();
    send_sizes(&sizes)?;
    lab.print(format!("sent {} messages: {}", sizes.len(), sends_text()));
    let map: PerCpuArray<_, u64> = PerCpuArray::try_from(
        bpf.map("by_size_per_cpu")
            .context("no map `by_size_per_cpu`")?,
    )?;
    let mut sums = Vec::new();
    for (slot, values) in map.iter().enumerate() {
        let values = values?;
        let sum: u64 = values.iter().sum();
        lab.print(format!("slot {slot}: per CPU {:?}, in all {sum}", &*values));
        sums.push(sum);
    }
    let expected = expected_slots(&sizes);
    Ok(match sums == expected {
        true => Outcome::Passed(format!(
            "per-cpu-array: {} messages, every slot's sum over the CPUs as sent",
            sizes.len()
        )),
        false => Outcome::Failed(format!(
            "per-cpu-array: slot sums {sums:?}, but the messages sent make {expected:?}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_size_counts_in_its_slot_and_past_the_end_nowhere() {
        assert_eq!(expected_slots(&array_sizes()), [0, 1, 2, 3, 0, 5, 0, 1]);
    }
}
