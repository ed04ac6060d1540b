//! The guest's console and channel, bytes to lines: bounded, however the guest writes.

use std::io::Read;

use bpflab_protocol::{EVENT_MARKER, MAX_LINE};

/// Bytes in, complete lines out, each at most [`MAX_LINE`] long: the guest decides what
/// its console says, and a line that never ends must not fill the host's memory.
#[derive(Default)]
pub(super) struct LineBuffer {
    /// The line being received, up to the limit.
    partial: Vec<u8>,
    /// The line being received went past the limit; the rest of it is dropped.
    cut: bool,
    eof: bool,
}

/// The most read from a descriptor in one go: whatever is left stays in the pipe until the
/// next wake-up, so a guest writing without pause cannot grow one read without bound.
const MAX_READ: usize = 1024 * 1024;

/// Shown at the end of a line cut at [`MAX_LINE`].
const CUT_MARK: &str = " … [line cut at 64 KiB]";

impl LineBuffer {
    /// Reads whatever is available now (non-blocking) and returns the complete lines.
    pub(super) fn read_lines(&mut self, source: &mut impl Read) -> Vec<String> {
        let raw = self.read_available(source);
        self.feed(&raw)
    }

    /// Reads whatever is available now (non-blocking, at most [`MAX_READ`]), as raw bytes.
    pub(super) fn read_available(&mut self, source: &mut impl Read) -> Vec<u8> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        while raw.len() < MAX_READ {
            match source.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing more for now
            }
        }
        raw
    }

    /// Adds bytes and returns the lines they complete. Only the new bytes are searched
    /// for newlines, so a long line costs no more than a short one per byte.
    pub(super) fn feed(&mut self, raw: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = raw;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.append(&rest[..pos]);
            lines.push(self.take_line());
            rest = &rest[pos + 1..];
        }
        self.append(rest);
        lines
    }

    /// The source ended (QEMU closed it).
    pub(super) fn eof(&self) -> bool {
        self.eof
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn take_line(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.partial)
            .trim_end_matches('\r')
            .replace('\r', "");
        if std::mem::take(&mut self.cut) {
            line.push_str(CUT_MARK);
        }
        self.partial.clear();
        line
    }
}

/// What the user's terminal gets of the console in interactive mode: every byte at once
/// (a shell prompt has no newline), except event lines, which are shown as events.
pub(super) struct MarkerFilter {
    /// Events share the console (arm64): hold back lines that may be events.
    shared: bool,
    at_line_start: bool,
    held: Vec<u8>,
}

impl MarkerFilter {
    pub(super) fn new(shared: bool) -> MarkerFilter {
        MarkerFilter {
            shared,
            at_line_start: true,
            held: Vec::new(),
        }
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        if !self.shared {
            return bytes.to_vec();
        }
        let marker = EVENT_MARKER.as_bytes();
        let mut out = Vec::new();
        for &b in bytes {
            if self.at_line_start || !self.held.is_empty() {
                self.held.push(b);
                // No event is longer than MAX_LINE: a longer line is the guest's text.
                let could_be_event = if self.held.len() <= marker.len() {
                    marker.starts_with(&self.held)
                } else {
                    self.held.starts_with(marker) && self.held.len() <= MAX_LINE
                };
                if !could_be_event {
                    out.append(&mut self.held);
                } else if b == b'\n' {
                    self.held.clear(); // an event line: shown as an event, not raw
                }
            } else {
                out.push(b);
            }
            self.at_line_start = b == b'\n';
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_hides_event_lines_but_not_prompts() {
        let mut f = MarkerFilter::new(true);
        let mut shown = f.feed(b"bpflab:/# ");
        shown.extend(f.feed(b"ls\r\n@bpf"));
        shown.extend(f.feed(b"lab {\"event\":\"done\"}\nbin  dev\n@x\n"));
        assert_eq!(
            String::from_utf8(shown).unwrap(),
            "bpflab:/# ls\r\nbin  dev\n@x\n"
        );
        let mut own_port = MarkerFilter::new(false);
        assert_eq!(own_port.feed(b"@bpflab raw"), b"@bpflab raw");
    }

    #[test]
    fn line_buffer_keeps_partial_lines_for_later() {
        let mut lb = LineBuffer::default();
        let mut part1: &[u8] = b"first\r\nsec";
        assert_eq!(lb.read_lines(&mut part1), vec!["first".to_string()]);
        let mut part2: &[u8] = b"ond\nthird";
        assert_eq!(lb.read_lines(&mut part2), vec!["second".to_string()]);
        assert_eq!(lb.partial, b"third");
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_and_marked() {
        let mut lb = LineBuffer::default();
        let long = vec![b'x'; 100 * 1024];
        assert_eq!(lb.feed(&long), Vec::<String>::new());
        let lines = lb.feed(b"tail\nnext\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE + CUT_MARK.len());
        assert!(lines[0].ends_with("x … [line cut at 64 KiB]"));
        assert_eq!(lines[1], "next");
    }

    #[test]
    fn a_line_that_never_ends_stays_bounded_and_is_scanned_once() {
        // 10 MB without a newline, in the 4 KiB pieces a pipe delivers. Before lines were
        // capped and only new bytes searched, the buffer held all of it and each piece
        // rescanned everything before it (25 GB of comparisons).
        let mut lb = LineBuffer::default();
        let piece = [b'y'; 4096];
        for _ in 0..(10_000_000 / piece.len()) {
            assert!(lb.feed(&piece).is_empty());
            assert!(lb.partial.len() <= MAX_LINE);
        }
        assert!(
            lb.partial.capacity() <= 2 * MAX_LINE,
            "{}",
            lb.partial.capacity()
        );
        assert_eq!(lb.feed(b"\n")[0].len(), MAX_LINE + CUT_MARK.len());
        assert!(lb.partial.is_empty() && !lb.cut);
    }

    #[test]
    fn reads_take_at_most_a_bounded_amount_at_once() {
        let mut endless = std::io::repeat(b'z');
        let mut lb = LineBuffer::default();
        let raw = lb.read_available(&mut endless);
        assert!(raw.len() >= MAX_READ && raw.len() < MAX_READ + 8192);
    }

    #[test]
    fn passthrough_stops_holding_a_line_too_long_to_be_an_event() {
        let mut f = MarkerFilter::new(true);
        let mut line = b"@bpflab ".to_vec();
        line.extend(vec![b'w'; MAX_LINE]);
        assert_eq!(f.feed(&line), line);
        assert!(f.held.is_empty());
    }
}
