//! Line framing: splits the service's byte stream into lines (memchr), collapses `\r` progress
//! bars to their last state, strips ANSI escape sequences and cuts overlong lines into pieces.
//! Memory is bounded: an unfinished line is held up to the cap, never more.

use memchr::{memchr3_iter, memrchr};

/// One line (or one piece of an overlong line), without its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub text: &'a [u8],
    /// The line goes on in the next segment (it was cut at the cap).
    pub cut: bool,
    /// This segment continues a line cut before it.
    pub continued: bool,
}

/// Splits a stream into [`Segment`]s.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    /// Raw bytes of the unfinished line (at most `max`, progress-bar states already collapsed).
    partial: Vec<u8>,
    /// Whether `partial` holds a `\r` or an escape character.
    partial_dirty: bool,
    clean: Vec<u8>,
    continued: bool,
}

const ESC: u8 = 0x1b;

impl Framer {
    /// A framer cutting lines longer than `max` bytes (at least 64).
    pub fn new(max: usize) -> Self {
        let max = max.max(64);
        Self {
            max,
            partial: Vec::new(),
            partial_dirty: false,
            clean: Vec::new(),
            continued: false,
        }
    }

    /// The line length cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Feeds bytes; every completed line (or cut piece) goes to `emit`, in order.
    pub fn push(&mut self, input: &[u8], emit: &mut dyn FnMut(Segment<'_>)) {
        let mut start = 0;
        let mut dirty = false;
        for pos in memchr3_iter(b'\n', b'\r', ESC, input) {
            if input[pos] != b'\n' {
                dirty = true;
                continue;
            }
            let line = &input[start..pos];
            if self.partial.is_empty() && !dirty && line.len() <= self.max {
                emit(Segment {
                    text: line,
                    cut: false,
                    continued: std::mem::take(&mut self.continued),
                });
            } else {
                self.append(line, dirty, emit);
                self.terminate(emit);
            }
            start = pos + 1;
            dirty = false;
        }
        if start < input.len() {
            self.append(&input[start..], dirty, emit);
        }
    }

    /// Emits what is left of an unfinished line (the stream ended).
    pub fn finish(&mut self, emit: &mut dyn FnMut(Segment<'_>)) {
        if !self.partial.is_empty() {
            self.terminate(emit);
        }
        self.continued = false;
    }

    /// Adds bytes of an unfinished line, collapsing `\r` states and cutting at the cap.
    fn append(&mut self, data: &[u8], dirty: bool, emit: &mut dyn FnMut(Segment<'_>)) {
        let old = self.partial.len();
        self.partial.extend_from_slice(data);
        if dirty || self.partial_dirty {
            self.partial_dirty = true;
            // A `\r` followed by more text starts the bar's next state: keep only that. A `\r` at
            // the very end may be the first half of `\r\n`, so it stays for now.
            let search_from = old.saturating_sub(1);
            let mut end = self.partial.len() - 1;
            while end > search_from {
                match memrchr(b'\r', &self.partial[search_from..end]) {
                    Some(r) if self.partial[search_from + r + 1] == b'\r' => end = search_from + r,
                    Some(r) => {
                        self.partial.drain(..search_from + r + 1);
                        break;
                    }
                    None => break,
                }
            }
        }
        while self.partial.len() > self.max {
            let mut cut = self.max;
            // Never split a UTF-8 sequence.
            let mut back = 0;
            while back < 3 && cut > 1 && (self.partial[cut] & 0xC0) == 0x80 {
                cut -= 1;
                back += 1;
            }
            if back == 3 && (self.partial[cut] & 0xC0) == 0x80 {
                cut = self.max;
            }
            self.clean.clear();
            clean_into(&self.partial[..cut], &mut self.clean);
            emit(Segment {
                text: &self.clean,
                cut: true,
                continued: self.continued,
            });
            self.continued = true;
            self.partial.drain(..cut);
        }
    }

    /// The unfinished line is complete.
    fn terminate(&mut self, emit: &mut dyn FnMut(Segment<'_>)) {
        self.clean.clear();
        if self.partial_dirty {
            clean_into(&self.partial, &mut self.clean);
        } else {
            self.clean.extend_from_slice(&self.partial);
        }
        emit(Segment {
            text: &self.clean,
            cut: false,
            continued: std::mem::take(&mut self.continued),
        });
        self.partial.clear();
        self.partial_dirty = false;
    }
}

/// Collapses `\r` progress states (the last non-empty one is kept, `\r\n` is a plain line end)
/// and strips ANSI escape sequences (one cut short at the end is dropped).
pub fn clean_into(line: &[u8], out: &mut Vec<u8>) {
    let mut text = line;
    while let [rest @ .., b'\r'] = text {
        text = rest;
    }
    if let Some(r) = memrchr(b'\r', text) {
        text = &text[r + 1..];
    }
    strip_ansi(text, out);
}

/// Appends `text` without its escape sequences: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL` or
/// `ESC \`), and two-byte escapes.
pub fn strip_ansi(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(off) = memchr::memchr(ESC, &text[i..]) {
        let esc = i + off;
        out.extend_from_slice(&text[i..esc]);
        let mut j = esc + 1;
        match text.get(j) {
            Some(b'[') => {
                j += 1;
                while j < text.len() && (0x20..=0x3f).contains(&text[j]) {
                    j += 1;
                }
                // The final byte.
                if j < text.len() && (0x40..=0x7e).contains(&text[j]) {
                    j += 1;
                }
            }
            Some(b']') => {
                j += 1;
                loop {
                    match text.get(j) {
                        None => break,
                        Some(0x07) => {
                            j += 1;
                            break;
                        }
                        Some(&ESC) if text.get(j + 1) == Some(&b'\\') => {
                            j += 2;
                            break;
                        }
                        Some(_) => j += 1,
                    }
                }
            }
            Some(c) if (0x20..=0x2f).contains(c) => {
                // Intermediate bytes, then one final byte (`ESC ( B`).
                while j < text.len() && (0x20..=0x2f).contains(&text[j]) {
                    j += 1;
                }
                if j < text.len() && (0x30..=0x7e).contains(&text[j]) {
                    j += 1;
                }
            }
            Some(c) if (0x30..=0x7e).contains(c) => j += 1,
            _ => {}
        }
        i = j.min(text.len());
    }
    out.extend_from_slice(&text[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool, bool)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let mut emit = |s: Segment<'_>| {
            out.push((
                String::from_utf8_lossy(s.text).into_owned(),
                s.cut,
                s.continued,
            ));
        };
        for c in chunks {
            f.push(c, &mut emit);
        }
        f.finish(&mut emit);
        out
    }

    fn texts(v: &[(String, bool, bool)]) -> Vec<&str> {
        v.iter().map(|(t, _, _)| t.as_str()).collect()
    }

    #[test]
    fn splits_lines_across_chunks() {
        let v = frame(100, &[b"one\ntw", b"o\nthr", b"ee", b"\n\nlast"]);
        assert_eq!(texts(&v), ["one", "two", "three", "", "last"]);
    }

    #[test]
    fn collapses_progress_bars_and_crlf() {
        let v = frame(
            100,
            &[
                b"  0%|   |\r 50%|#  |\r",
                b"100%|###|\r\nwin\r\n",
                b"a\r\r\n",
            ],
        );
        assert_eq!(texts(&v), ["100%|###|", "win", "a"]);
        // A bar that never ends with a newline keeps memory flat: only the last state is held.
        let mut f = Framer::new(64);
        let mut n = 0;
        for i in 0..10_000 {
            f.push(format!("\r{i:>5}%|").as_bytes(), &mut |_| n += 1);
            assert!(f.partial.len() <= 16, "{}", f.partial.len());
        }
        assert_eq!(n, 0);
    }

    #[test]
    fn strips_ansi_escapes() {
        let v = frame(
            100,
            &[b"\x1b[32mINFO\x1b[0m:     ok \x1b]0;title\x07done \x1b(Bx\n"],
        );
        assert_eq!(texts(&v), ["INFO:     ok done x"]);
    }

    #[test]
    fn caps_long_lines_and_marks_the_pieces() {
        let long = "x".repeat(150);
        let v = frame(64, &[format!("{long}\nshort\n").as_bytes()]);
        assert_eq!(v.len(), 4);
        assert_eq!((v[0].0.len(), v[0].1, v[0].2), (64, true, false));
        assert_eq!((v[1].0.len(), v[1].1, v[1].2), (64, true, true));
        assert_eq!((v[2].0.len(), v[2].1, v[2].2), (22, false, true));
        assert_eq!(v[3], ("short".into(), false, false));
    }

    #[test]
    fn never_cuts_inside_a_utf8_character() {
        let s = format!("{}{}\n", "a".repeat(63), "é".repeat(10));
        let v = frame(64, &[s.as_bytes()]);
        assert_eq!(v[0].0, "a".repeat(63));
        assert_eq!(v[1].0, "é".repeat(10));
    }
}
