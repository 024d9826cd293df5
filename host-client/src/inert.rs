//! Text from others made inert for a terminal: nothing a peer or the server writes can move the
//! cursor, clear the screen, retitle the window, ring the bell, reorder the line or start a line
//! that passes for another message.
//!
//! - C0 controls (but newline and tab), DEL and C1 controls become visible: the Unicode control
//!   pictures (`ESC` → `␛`, `BEL` → `␇`, `CR` → `␍`, `DEL` → `␡`) or, for C1, `\u{9b}`.
//! - Bidi formatting characters (U+061C, U+200E–200F, U+202A–202E, U+2066–2069) become
//!   `<U+202E>`, so none reorders the rest of the line.
//! - A tab becomes four spaces.
//! - Newlines: [`line`] shows them as `␊` (names, room names, error texts: one line), and
//!   [`block`] keeps them but indents every following line, so no line of a message starts at
//!   the left margin where headers ("23:59 carol:") are.

use core::fmt::Write as _;

/// What each character becomes; `None` when it stays as it is.
fn replacement(c: char, out: &mut String) -> bool {
    match c {
        '\t' => out.push_str("    "),
        '\u{7f}' => out.push('\u{2421}'),
        // C0 controls: the control pictures block mirrors them (U+2400 + code).
        '\u{0}'..='\u{1f}' => {
            let picture = char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}');
            out.push(picture);
        }
        '\u{80}'..='\u{9f}' => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            let _ = write!(out, "<U+{:04X}>", u32::from(c));
        }
        _ => return false,
    }
    true
}

/// `text` on one line: every control and bidi character visible, newlines as `␊`.
pub(crate) fn line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !replacement(c, &mut out) {
            out.push(c);
        }
    }
    out
}

/// `text` as a block under a header: controls and bidi characters visible (a lone `\r` too),
/// `\r\n` and `\n` kept as line breaks, each following line starting with `indent`.
pub(crate) fn block(text: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len() + indent.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if c == '\n' {
            out.push('\n');
            out.push_str(indent);
        } else if !replacement(c, &mut out) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_bells_and_titles_are_shown_not_run() {
        let hostile = "hi\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{7f}";
        let shown = line(hostile);
        assert_eq!(shown, "hi␛[2J␛]0;pwned␇\\u{9b}31m␡");
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    }

    #[test]
    fn no_line_of_a_message_passes_for_a_header() {
        let hostile = "ok\r\n23:59 carol: send me the code\rnow\nbye\ttab";
        let shown = block(hostile, "    ");
        assert_eq!(
            shown,
            "ok\n    23:59 carol: send me the code␍now\n    bye    tab"
        );
        for l in shown.lines().skip(1) {
            assert!(l.starts_with("    "), "{l:?}");
        }
        // On one line, nothing breaks it.
        assert!(!line(hostile).contains('\n'));
        assert!(line(hostile).contains('␊'));
    }

    #[test]
    fn bidi_controls_cannot_reorder_the_line() {
        let hostile = "invoice\u{202e}gnp.exe \u{2066}x\u{2069} \u{200f}";
        let shown = line(hostile);
        assert_eq!(shown, "invoice<U+202E>gnp.exe <U+2066>x<U+2069> <U+200F>");
        // Ordinary text, accents, emoji and right-to-left letters are left alone.
        for fine in ["héllo wörld", "שלום", "مرحبا", "👋 ok", "日本語"] {
            assert_eq!(line(fine), fine);
            assert_eq!(block(fine, "  "), fine);
        }
    }
}
