//! Lesson 5, user side: the same events through the two channels a tracing program has to
//! user space, in two parts:
//!
//! - **perf-buffer**: `perf_buffer.bpf.o` on `tcp_sendmsg`, one perf buffer per CPU;
//! - **ring-buffer**: `ring_buffer.bpf.o` on `tcp_sendmsg`, one BPF ring buffer for all
//!   (5.8+; unsupported before, as the kernel says when asked).
//!
//! Each part sends messages over loopback, every one a size of its own, in three rounds:
//! a few read one by one, a flood that overfills the buffer before anything is read, and
//! one more after the buffer was emptied. What arrives is checked against what was sent:
//! which messages, in which order, from which process and thread, and exactly how many
//! the buffer's size lets through.

pub mod channel;
mod judge;
mod rounds;

use anyhow::Context as _;
use aya::maps::perf::PerfEventArray;
use aya::maps::{Array, Map, RingBuf};
use aya::programs::KProbe;
use aya::Ebpf;
use bpflab_guest::{combine_parts, unsupported_as_outcome, Lab, Outcome};

use channel::{fits, perf_record_bytes, ring_record_bytes, EVENT_BYTES};
use rounds::send_rounds;

/// Runs the parts the learner asked for (both by default).
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut outcomes = Vec::new();
    for (part, run_part) in [
        (
            "perf-buffer",
            perf_buffer as fn(&mut Lab) -> anyhow::Result<Outcome>,
        ),
        ("ring-buffer", ring_buffer),
    ] {
        if !lab.wants_part(part) {
            continue;
        }
        // One part the kernel cannot run does not hide how the other went.
        match unsupported_as_outcome(run_part(lab))? {
            Outcome::Unsupported(reason) => {
                outcomes.push(Outcome::Unsupported(format!("{part}: {reason}")))
            }
            outcome => outcomes.push(outcome),
        }
    }
    Ok(combine_parts(outcomes))
}

/// Loads `object` and attaches its `function` to tcp_sendmsg.
pub fn attach_to_sendmsg(lab: &mut Lab, object: &str, function: &str) -> anyhow::Result<Ebpf> {
    let mut bpf = lab.load(object)?;
    let program: &mut KProbe = bpf
        .program_mut(function)
        .with_context(|| format!("{object} has no function `{function}`"))?
        .try_into()?;
    program.load()?;
    program.attach("tcp_sendmsg", 0)?;
    lab.note("kprobe attached to tcp_sendmsg");
    Ok(bpf)
}

fn perf_buffer(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part perf-buffer: bpf_perf_event_output into one buffer per CPU");
    // The perf event array (4.3): lesson.toml says this part needs it, and the kernel is
    // asked, not its version.
    lab.require_part("perf-buffer")?;
    let mut bpf = attach_to_sendmsg(lab, "perf_buffer.bpf.o", "perf_on_sendmsg")?;
    let map = bpf
        .take_map("perf_events")
        .context("perf_buffer.bpf.o has no map `perf_events`")?;
    let mut array = PerfEventArray::try_from(map)?;
    let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    // One page each, the smallest perf buffer there is: the flood overfills it.
    let page = page_size()?;
    let mut buffers = cpus
        .iter()
        .map(|&cpu| array.open(cpu, Some(1)))
        .collect::<Result<Vec<_>, _>>()?;
    let record = perf_record_bytes(EVENT_BYTES);
    let capacity = fits(page, record);
    lab.note(format!(
        "{} online: one perf buffer per CPU, {page} bytes each; an event of {EVENT_BYTES} \
         bytes takes {record} there, so {capacity} fit",
        match cpus.len() {
            1 => "1 CPU".to_string(),
            n => format!("{n} CPUs"),
        }
    ));
    let rounds = send_rounds(|| Ok(channel::drain_perf(&mut buffers)))?;
    Ok(judge::judge(lab, "perf-buffer", &rounds, capacity, None))
}

fn ring_buffer(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note("part ring-buffer: bpf_ringbuf_reserve and submit, one buffer for every CPU");
    // The ring buffer (5.8): declared in lesson.toml; the guest creates one to see.
    lab.require_part("ring-buffer")?;
    let mut bpf = attach_to_sendmsg(lab, "ring_buffer.bpf.o", "ring_on_sendmsg")?;
    let map = bpf
        .take_map("ring_events")
        .context("ring_buffer.bpf.o has no map `ring_events`")?;
    // The size the kernel gave the buffer, not the one this file believes the C says.
    let bytes = match &map {
        Map::RingBuf(data) => data.info()?.max_entries() as usize,
        _ => anyhow::bail!("`ring_events` in ring_buffer.bpf.o is not a ring buffer"),
    };
    let mut ring = RingBuf::try_from(map)?;
    let record = ring_record_bytes(EVENT_BYTES);
    let capacity = fits(bytes, record);
    lab.note(format!(
        "one ring buffer of {bytes} bytes for every CPU; an event of {EVENT_BYTES} bytes \
         takes {record} there, so {capacity} fit"
    ));
    let rounds = send_rounds(|| Ok(channel::drain_ring(&mut ring)))?;
    let dropped: Array<_, u64> = Array::try_from(bpf.map("dropped").context("no map `dropped`")?)?;
    let dropped = dropped.get(&0, 0)?;
    Ok(judge::judge(
        lab,
        "ring-buffer",
        &rounds,
        capacity,
        Some(dropped),
    ))
}

fn page_size() -> anyhow::Result<usize> {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).context("sysconf(_SC_PAGESIZE) failed")
}
