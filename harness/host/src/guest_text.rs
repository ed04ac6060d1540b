//! Text from the guest, made safe to print on the user's terminal.
//!
//! Anything inside the VM can put text in front of the user: a process writing to
//! `trace_marker` or to the console, a lesson's output, the verifier's log. A terminal
//! obeys control characters, so raw guest text could retitle the window, clear the
//! screen or move the cursor over bpflab's own lines. [`visible`] shows each control
//! character as text instead. (`--shell` passes the console through untouched on
//! purpose: there the guest owns the terminal.)

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character shown instead of obeyed: ESC as `^[`, the other
/// C0 characters and DEL in caret notation (`^M`, `^J`, `^?`), C1 characters and the
/// bidirectional overrides (which reorder what a terminal shows) as `\u{..}`. Tabs stay.
/// Newlines are shown too: callers split multi-line text into lines first.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hazard) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !is_hazard(c) => out.push(c),
            // Caret notation: ESC is ^[, NUL ^@, DEL ^?.
            '\0'..='\x1f' | '\x7f' => {
                out.push('^');
                out.push(char::from(c as u8 ^ 0x40));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// [`visible`], line by line: the newlines stay (for text kept in reports, such as a
/// verifier log).
pub fn visible_lines(text: &str) -> String {
    text.split('\n').map(visible).collect::<Vec<_>>().join("\n")
}

fn is_hazard(c: char) -> bool {
    (c.is_control() && c != '\t') || is_bidi_control(c)
}

/// Embeddings, overrides and isolates: terminals that honour them show text in an order
/// other than the one it has.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_tabs_pass_unchanged_without_copying() {
        let line = "  init-1 [000] ...21 4.08: bpf_trace_printk: Hello World!!\tü ✔";
        assert!(matches!(visible(line), Cow::Borrowed(_)));
        assert_eq!(visible(line), line);
    }

    #[test]
    fn terminal_commands_are_shown_not_obeyed() {
        assert_eq!(visible("\x1b]0;pwned\x07title"), "^[]0;pwned^Gtitle");
        assert_eq!(visible("\x1b[2J\x1b[H"), "^[[2J^[[H");
        assert_eq!(visible("a\rb\nc\0d\x7f"), "a^Mb^Jc^@d^?");
        // C1 controls (U+009B is CSI on terminals that take 8-bit controls).
        assert_eq!(visible("\u{9b}2J\u{85}"), "\\u{9b}2J\\u{85}");
        assert_eq!(visible("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn line_by_line_keeps_the_lines() {
        assert_eq!(
            visible_lines("0: r1 = 0\n\x1b[2Jgone\n"),
            "0: r1 = 0\n^[[2Jgone\n"
        );
    }

    #[test]
    fn no_control_character_survives() {
        let every: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let shown = visible(&every);
        assert!(
            !shown.chars().any(|c| c != '\t' && is_hazard(c)),
            "{shown:?}"
        );
    }
}
