//! Splitting a byte stream into lines, whatever the chunk boundaries.

/// Lines longer than this are cut: the rest of the line is dropped and the
/// kept part handed on as is (it is then rarely valid JSON, so it ends up as a
/// `raw` event). 8 MiB is far above any real transcript line (the largest
/// seen are tool outputs of a few hundred KiB) and keeps a parser's memory
/// bounded well below the host's default per-plugin memory cap.
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// Joins chunks into complete lines. Only the unfinished tail of a chunk is
/// copied; complete lines are handed out as slices of the chunk.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
    /// Bytes of the current line dropped past [`MAX_LINE_BYTES`].
    dropped: usize,
}

impl LineBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `on_line` for every line completed by `chunk`, without its
    /// `\n` (or `\r\n`). Blank lines are skipped.
    pub fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        while let Some(pos) = memchr::memchr(b'\n', chunk) {
            let (head, rest) = (&chunk[..pos], &chunk[pos + 1..]);
            if self.partial.is_empty() && self.dropped == 0 {
                emit(head, &mut on_line);
            } else {
                self.push_partial(head);
                let line = std::mem::take(&mut self.partial);
                emit(&line, &mut on_line);
                self.partial = line;
                self.partial.clear();
                self.dropped = 0;
            }
            chunk = rest;
        }
        self.push_partial(chunk);
    }

    /// Hands out the last line if the stream did not end with a newline.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) {
        let line = std::mem::take(&mut self.partial);
        self.dropped = 0;
        emit(&line, &mut on_line);
    }

    fn push_partial(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
        let take = bytes.len().min(room);
        self.partial.extend_from_slice(&bytes[..take]);
        self.dropped += bytes.len() - take;
    }
}

fn emit(line: &[u8], on_line: &mut impl FnMut(&[u8])) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = &line[..line.len().min(MAX_LINE_BYTES)];
    if !line.iter().all(u8::is_ascii_whitespace) {
        on_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut buf = LineBuffer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.feed(chunk, |l| out.push(l.to_vec()));
        }
        buf.finish(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let whole = split(&[b"{\"a\":1}\r\n\n{\"b\":2}\nlast"]);
        let bytewise: Vec<&[u8]> = b"{\"a\":1}\r\n\n{\"b\":2}\nlast".chunks(1).collect();
        assert_eq!(split(&bytewise), whole);
        assert_eq!(
            whole,
            vec![
                b"{\"a\":1}".to_vec(),
                b"{\"b\":2}".to_vec(),
                b"last".to_vec()
            ]
        );
    }

    #[test]
    fn overlong_lines_are_cut_and_the_next_line_is_intact() {
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let lines = split(&[&long[..100], &long[100..], b"\nnext\n"]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1], b"next");
    }
}
