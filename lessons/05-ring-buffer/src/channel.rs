//! Reading the two channels, and what their records cost.

use aya::maps::perf::{PerfEvent, PerfEventArrayBuffer};
use aya::maps::{MapData, RingBuf};

/// `struct event` of event.h: four fields, no padding.
pub const EVENT_BYTES: usize = 24;

/// One event, as event.h lays it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The sending process.
    pub pid: u32,
    /// The sending thread.
    pub tid: u32,
    /// The message's size: which message it was.
    pub size: u64,
    /// When it was sent, in ns since boot.
    pub ts_ns: u64,
}

impl Event {
    /// Reads an event from a record's bytes (`None` if there are too few).
    pub fn parse(bytes: &[u8]) -> Option<Event> {
        let u32_at = |i: usize| Some(u32::from_ne_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_ne_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
        Some(Event {
            pid: u32_at(0)?,
            tid: u32_at(4)?,
            size: u64_at(8)?,
            ts_ns: u64_at(16)?,
        })
    }
}

/// What one read of a channel found.
#[derive(Debug, Default)]
pub struct Drained {
    /// The events, in the order they were read; `None` for a record too short to parse.
    pub events: Vec<Option<Event>>,
    /// Samples the kernel says it lost (perf buffers only: a ring buffer never says).
    pub lost: u64,
    /// How many events were read before the first lost record, if there was one.
    pub lost_at: Option<usize>,
}

impl Drained {
    /// The sizes of the events that parsed, in order.
    pub fn sizes(&self) -> Vec<u64> {
        self.events.iter().flatten().map(|e| e.size).collect()
    }
}

// ANCHOR: record_sizes (shown in the book)
/// Bytes an event of `event` bytes takes in a perf buffer: the record's header (`struct
/// perf_event_header`, 8), the raw sample's length (a u32), the event, all rounded up to
/// 8 bytes (the kernel pads the raw data so that records stay aligned).
pub fn perf_record_bytes(event: usize) -> usize {
    (8 + 4 + event).div_ceil(8) * 8
}

/// Bytes an event takes in a BPF ring buffer: its 8-byte header (`BPF_RINGBUF_HDR_SZ`:
/// length, busy and discard bits, page offset), then the event, rounded up to 8.
pub fn ring_record_bytes(event: usize) -> usize {
    (8 + event).div_ceil(8) * 8
}

/// How many records of `record` bytes an empty buffer of `buffer` bytes takes before one
/// is refused. Both keep a byte free: a perf buffer's writer needs the free space
/// (`CIRC_SPACE`, one less than what is not in use) to hold the record, a ring buffer's
/// producer never runs more than `size - 1` ahead of its consumer.
pub fn fits(buffer: usize, record: usize) -> usize {
    buffer.saturating_sub(1) / record
}
// ANCHOR_END: record_sizes

/// Everything waiting in the perf buffers, CPU by CPU.
pub fn drain_perf(buffers: &mut [PerfEventArrayBuffer<MapData>]) -> Drained {
    let mut drained = Drained::default();
    for buffer in buffers {
        buffer.for_each(|event| match event {
            PerfEvent::Sample { head, tail } => {
                drained.events.push(Event::parse(&[head, tail].concat()))
            }
            PerfEvent::Lost { count } => {
                drained.lost_at.get_or_insert(drained.events.len());
                drained.lost += count;
            }
        });
    }
    drained
}

/// Everything waiting in the ring buffer.
pub fn drain_ring(ring: &mut RingBuf<MapData>) -> Drained {
    let mut drained = Drained::default();
    while let Some(record) = ring.next() {
        drained.events.push(Event::parse(&record));
    }
    drained
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes_follow_the_kernels_layout() {
        // A 24-byte event: 8 + 4 + 24 = 36, padded to 40 in a perf buffer; 8 + 24 = 32
        // in a ring buffer.
        assert_eq!(perf_record_bytes(EVENT_BYTES), 40);
        assert_eq!(ring_record_bytes(EVENT_BYTES), 32);
        // A 4096-byte buffer keeps one byte free: 102 perf samples, 127 ring records.
        assert_eq!(fits(4096, 40), 102);
        assert_eq!(fits(4096, 32), 127);
    }

    #[test]
    fn an_event_parses_from_its_bytes_and_padding_is_ignored() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1u32.to_ne_bytes());
        bytes.extend_from_slice(&7u32.to_ne_bytes());
        bytes.extend_from_slice(&42u64.to_ne_bytes());
        bytes.extend_from_slice(&99u64.to_ne_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let event = Event::parse(&bytes).unwrap();
        assert_eq!(
            (event.pid, event.tid, event.size, event.ts_ns),
            (1, 7, 42, 99)
        );
        assert_eq!(Event::parse(&bytes[..20]), None);
    }
}
