//! Prompts, by the formats that print them: query strings of access lines (uvicorn, gin), vLLM's
//! `prompt: '...'` and `output: '...'` (Python reprs), Ollama's `prompt="..."`, and JSON or
//! Python-dict fields such as `"prompt"`, `"negative_prompt"`, `"messages"`, `"content"`,
//! `"text"` and `"input"`.

use super::scan::{self, back_len, is_space, is_word, line_end, run_len};
use super::{Kind, Span};

/// Field names whose values are prompts (or model output, or token ids that decode to them).
const KEYS: [&[u8]; 12] = [
    b"prompt",
    b"prompts",
    b"negative_prompt",
    b"prompt_token_ids",
    b"messages",
    b"content",
    b"text",
    b"input",
    b"inputs",
    b"input_ids",
    b"output",
    b"outputs",
];

/// `?query` in a request target (`/path?query`), up to ` HTTP/`, a quote or a blank.
pub fn query(buf: &[u8], p: usize) -> Option<Span> {
    let t = back_len(buf, p, |b| {
        !is_space(b) && !matches!(b, b'"' | b'\'' | b'<' | b'(' | b'[' | b'=')
    });
    let target = &buf[p - t..p];
    if t == 0 || !(target[0] == b'/' || scan::find(target, b"://").is_some()) {
        return None;
    }
    let le = line_end(buf, p);
    let end = match scan::find(&buf[p..le], b" HTTP/") {
        Some(i) => p + i,
        None => {
            p + 1
                + run_len(&buf[..le], p + 1, |b| {
                    !is_space(b) && b != b'"' && b != b'\''
                })
        }
    };
    (end > p + 1).then(|| Span::new(p + 1, end, Kind::Prompt))
}

/// Where a value scan stands: inside a quoted string, or inside brackets (JSON, Python).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueScan {
    /// Open brackets; 0 for a plain quoted string.
    depth: u32,
    /// The quote of the string the scan is in, if any.
    quote: Option<u8>,
    escaped: bool,
}

impl ValueScan {
    /// Scans from `from` to the end of the value. `Ok(end)`: the value ends before `end` (a
    /// string's closing quote is left out, a closing bracket is included). `Err(stop)`: the line
    /// (at `stop`) or the buffer ended first.
    pub fn run(&mut self, buf: &[u8], from: usize) -> Result<usize, usize> {
        let mut i = from;
        while i < buf.len() {
            // Inside a string, jump to the next byte that matters.
            if let (Some(q), false) = (self.quote, self.escaped) {
                match memchr::memchr3(q, b'\\', b'\n', &buf[i..]) {
                    Some(off) => i += off,
                    None => return Err(buf.len()),
                }
            }
            let b = buf[i];
            if b == b'\n' {
                return Err(i);
            }
            if let Some(q) = self.quote {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == q {
                    self.quote = None;
                    if self.depth == 0 {
                        return Ok(i);
                    }
                }
            } else {
                match b {
                    b'"' | b'\'' => self.quote = Some(b),
                    b'[' | b'{' | b'(' => self.depth += 1,
                    b']' | b'}' | b')' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        Err(buf.len())
    }
}

/// A prompt-carrying field at `p` (where one of the key words matched, `len` long): its value.
/// `open` receives the scan state when the value runs past the end of the buffer.
pub fn field(buf: &[u8], p: usize, len: usize, open: &mut Option<ValueScan>) -> Option<Span> {
    let ks = p - back_len(buf, p, is_word);
    let ke = p + len + run_len(buf, p + len, is_word);
    let name = &buf[ks..ke];
    let prompt_like = scan::find(name, b"prompt").is_some();
    if !(KEYS.contains(&name) || name.ends_with(b"_prompt")) {
        return None;
    }
    let key_quote = ks
        .checked_sub(1)
        .map(|i| buf[i])
        .filter(|q| *q == b'"' || *q == b'\'');
    let mut j = ke;
    let quoted_key = key_quote.is_some() && buf.get(j).copied() == key_quote;
    if quoted_key {
        j += 1;
    }
    j += run_len(buf, j, |b| b == b' ' || b == b'\t');
    match buf.get(j) {
        Some(b'=' | b':') if !matches!(buf.get(j + 1), Some(b'=')) => j += 1,
        _ => return None,
    }
    j += run_len(buf, j, |b| b == b' ' || b == b'\t');
    let first = *buf.get(j)?;
    let (start, mut scan) = match first {
        b'"' | b'\'' => (
            j + 1,
            ValueScan {
                depth: 0,
                quote: Some(first),
                escaped: false,
            },
        ),
        b'[' | b'{' => (
            j,
            ValueScan {
                depth: 0,
                quote: None,
                escaped: false,
            },
        ),
        _ if prompt_like || quoted_key => {
            let n = run_len(buf, j, |b| {
                !is_space(b) && !matches!(b, b',' | b';' | b'&' | b')' | b'}' | b']' | b'"' | b'\'')
            });
            let v = &buf[j..j + n];
            if n == 0
                || v == b"None"
                || v == b"null"
                || v == b"nil"
                || v.starts_with(b"[REDACTED")
                || (!prompt_like && v.iter().all(|b| b.is_ascii_digit() || *b == b'.'))
            {
                return None;
            }
            return Some(Span::new(j, j + n, Kind::Prompt));
        }
        _ => return None,
    };
    match scan.run(buf, start) {
        Ok(end) if end > start => Some(Span::new(start, end, Kind::Prompt)),
        Ok(_) => None,
        Err(stop) => {
            if stop == buf.len() {
                *open = Some(scan);
            }
            (stop > start).then(|| Span::new(start, stop, Kind::Prompt))
        }
    }
}
