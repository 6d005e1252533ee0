//! Small formatting helpers for what people read: durations, long text,
//! and colour only where a terminal shows it.

use std::borrow::Cow;
use std::time::Duration;

/// `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`, `3d 04h`.
pub fn duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    let secs = duration.as_secs();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if secs < 60 {
        format!("{:.1} s", duration.as_secs_f64())
    } else if secs < 3_600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h {:02}m", secs / 3_600, secs % 3_600 / 60)
    } else {
        format!("{}d {:02}h", secs / 86_400, secs % 86_400 / 3_600)
    }
}

/// `text` cut to at most `max` characters, with `…` where it was cut.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((cut, _)) => {
            let keep = text[..cut]
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(cut, |(i, _)| i);
            Cow::Owned(format!("{}…", &text[..keep]))
        }
        None => Cow::Borrowed(text),
    }
}

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when `stream` is a terminal and `NO_COLOR` is not set.
    pub fn for_terminal(stream: &impl std::io::IsTerminal) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: stream.is_terminal() && !no_color,
        }
    }

    #[cfg(test)]
    pub const PLAIN: Style = Style { color: false };

    fn paint<'a>(self, code: &str, text: &'a str) -> Cow<'a, str> {
        if self.color {
            Cow::Owned(format!("\x1b[{code}m{text}\x1b[0m"))
        } else {
            Cow::Borrowed(text)
        }
    }

    pub fn dim(self, text: &str) -> Cow<'_, str> {
        self.paint("2", text)
    }

    pub fn bold(self, text: &str) -> Cow<'_, str> {
        self.paint("1", text)
    }

    pub fn red(self, text: &str) -> Cow<'_, str> {
        self.paint("31", text)
    }

    pub fn green(self, text: &str) -> Cow<'_, str> {
        self.paint("32", text)
    }

    pub fn yellow(self, text: &str) -> Cow<'_, str> {
        self.paint("33", text)
    }

    pub fn cyan(self, text: &str) -> Cow<'_, str> {
        self.paint("36", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(duration(Duration::from_secs(245)), "4m 05s");
        assert_eq!(duration(Duration::from_secs(7_380)), "2h 03m");
        assert_eq!(duration(Duration::from_secs(2 * 86_400 + 3_600)), "2d 01h");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("ééééééééééé", 5), "éééé…");
    }

    #[test]
    fn plain_style_adds_nothing() {
        assert_eq!(Style::PLAIN.red("x"), "x");
        assert_eq!(Style { color: true }.dim("x"), "\x1b[2mx\x1b[0m");
    }
}
