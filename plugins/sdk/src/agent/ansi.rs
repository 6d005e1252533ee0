//! Cleaning lines for `raw` events: terminal escapes and control characters
//! are display noise, not content.

/// Decodes `line` lossily and drops ANSI escape sequences (CSI, OSC and
/// two-byte escapes) and control characters (C0 other than tab, DEL, C1).
///
/// Runs of plain text are copied whole; only the characters that may need
/// dropping are looked at one by one. Most lines have none, and a
/// char-by-char loop cost a plugin as much per byte as the JSON parse.
pub fn clean(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    loop {
        // `needs_care` bytes are ASCII or a UTF-8 lead byte, so `plain` is
        // on a char boundary.
        let plain = rest.bytes().position(needs_care).unwrap_or(rest.len());
        out.push_str(&rest[..plain]);
        let mut chars = rest[plain..].chars();
        let Some(c) = chars.next() else {
            break;
        };
        keep_char(c, &mut chars, &mut out);
        rest = chars.as_str();
    }
    out
}

/// The rule for one character `c`, with `chars` just past it: an escape
/// sequence is skipped, a control character other than tab dropped, and
/// anything else kept.
fn keep_char(c: char, chars: &mut std::str::Chars<'_>, out: &mut String) {
    match c {
        '\u{1b}' => skip_escape(chars),
        '\t' => out.push(c),
        c if c.is_control() => {}
        c => out.push(c),
    }
}

/// Bytes that may start something [`clean`] drops: C0 controls other than
/// tab, DEL, and 0xC2, the lead byte of the C1 controls (U+0080..=U+009F).
fn needs_care(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f || b == 0xc2
}

/// Consumes the rest of an escape sequence whose ESC was just read.
fn skip_escape(chars: &mut std::str::Chars<'_>) {
    match chars.next() {
        // CSI: parameters and intermediates, then one final byte.
        Some('[') => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        // OSC: up to BEL or ST (ESC \).
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' && chars.clone().next() == Some('\\') {
                    chars.next();
                    break;
                }
            }
        }
        // Any other escape is two characters long.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn strips_colours_titles_and_controls() {
        assert_eq!(clean(b"\x1b[1;31merror\x1b[0m: bad"), "error: bad");
        assert_eq!(clean(b"\x1b]0;title\x07after"), "after");
        assert_eq!(clean(b"\x1b]8;;http://x\x1b\\link"), "link");
        assert_eq!(clean(b"a\tb\rc\x08"), "a\tbc");
    }

    #[test]
    fn c1_controls_go_and_other_text_stays() {
        // U+0085 and U+009B are C1 controls; U+00A0, é and 🦀 are text.
        assert_eq!(
            clean("a\u{85}b\u{9b}c\u{a0}d é 🦀\u{7f}".as_bytes()),
            "abc\u{a0}d é 🦀"
        );
        assert_eq!(clean(b""), "");
        assert_eq!(clean(b"\x1b"), "");
        assert_eq!(clean(b"\x1b[31"), "");
        assert_eq!(clean(b"plain line"), "plain line");
    }

    /// The fast path must agree with a char-by-char reading everywhere.
    #[test]
    fn agrees_with_the_char_by_char_definition() {
        let samples: [&[u8]; 6] = [
            b"\x1b[1;31merror\x1b[0m: bad \xc2\xa0\xc2\x85 x",
            b"\x1b]0;t\x1b\\\x1b]8;;u\x07ok\x1bXy",
            "tab\there \u{1b}[2K\rprogress 50%\u{8}".as_bytes(),
            b"\xff\xc2\x1b[m\xc2",
            b"\x1b]unterminated",
            "naïve résumé — 日本語 \u{1b}[0m".as_bytes(),
        ];
        for sample in samples {
            assert_eq!(clean(sample), reference(sample), "{sample:?}");
        }
    }

    /// Every character through the rule, none copied in a run.
    fn reference(line: &[u8]) -> String {
        let text = String::from_utf8_lossy(line);
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            super::keep_char(c, &mut chars, &mut out);
        }
        out
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        assert_eq!(clean(b"ok \xff\xfe end"), "ok \u{fffd}\u{fffd} end");
    }
}
