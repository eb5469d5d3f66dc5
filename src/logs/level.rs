//! Levels of log records, recognised in the formats AI services print, and the filter that keeps
//! records at or above the policy's minimum. A record is a line with a level and the lines that
//! continue it (indented lines, tracebacks); lines in formats not recognised are kept.

use crate::logs::redact::scan::{find, find_all};
use crate::policy::Level;

/// What a line is, as far as levels go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Starts a record with this level.
    Record(Level),
    /// Continues the record above (indented, blank).
    Continuation,
    /// `Traceback (most recent call last):` and the chaining lines between tracebacks.
    Traceback,
    /// A line in no known format.
    Unknown,
}

/// Classifies one line.
pub fn classify(line: &[u8]) -> Kind {
    let line = strip_process_prefix(line);
    let Some(&first) = line.first() else {
        return Kind::Continuation;
    };
    match first {
        b' ' | b'\t' => return Kind::Continuation,
        b'T' if line.starts_with(b"Traceback (most recent call last):") => return Kind::Traceback,
        b'D' if line.starts_with(b"During handling of the above exception") => {
            return Kind::Traceback;
        }
        b'T' if line.starts_with(b"The above exception was the direct cause") => {
            return Kind::Traceback;
        }
        _ => {}
    }
    level_of(line).map_or(Kind::Unknown, Kind::Record)
}

/// vLLM's multiprocess prefix, `(APIServer pid=12) ` or `(VllmWorker rank=0 pid=13) `.
fn strip_process_prefix(line: &[u8]) -> &[u8] {
    if line.first() != Some(&b'(') {
        return line;
    }
    let head = &line[..line.len().min(64)];
    match find(head, b") ") {
        Some(end) if find(&head[..end], b"pid=").is_some() => &line[end + 2..],
        _ => line,
    }
}

/// The level named at the start of a line in one of the known formats.
pub fn level_of(line: &[u8]) -> Option<Level> {
    let first = *line.first()?;
    if first.is_ascii_uppercase() {
        // Python logging `LEVEL:name:msg`, uvicorn `LEVEL:     msg`, vLLM `LEVEL MM-DD hh:mm:ss`.
        let word_len = line
            .iter()
            .take(9)
            .take_while(|b| b.is_ascii_uppercase())
            .count();
        if let Some(level) = named(&line[..word_len]) {
            match line.get(word_len) {
                Some(b':') => return Some(level),
                Some(b' ') if line.get(word_len + 1).is_some_and(u8::is_ascii_digit) => {
                    return Some(level);
                }
                _ => {}
            }
        }
        // glog / klog: `I0512 11:43:00.123456 ...`.
        if line.len() > 6 && line[1..5].iter().all(u8::is_ascii_digit) && line[5] == b' ' {
            return match first {
                b'I' => Some(Level::Info),
                b'W' => Some(Level::Warning),
                b'E' => Some(Level::Error),
                b'F' => Some(Level::Critical),
                _ => None,
            };
        }
    }
    if first == b'[' {
        // gin: `[GIN] 2025/05/12 - ...` (access lines), `[GIN-debug] ...`, `[WARNING] ...`.
        if line.starts_with(b"[GIN] ") {
            return Some(Level::Info);
        }
        if line.starts_with(b"[GIN-debug]") {
            return Some(Level::Debug);
        }
        if line.starts_with(b"[GIN-error]") {
            return Some(Level::Error);
        }
        let end = memchr::memchr(b']', &line[..line.len().min(12)])?;
        return named(&line[1..end]);
    }
    if first.is_ascii_digit() {
        // `2025-05-12 11:43:00,123 LEVEL ...` or `... - name - LEVEL - ...` (Python asctime).
        let ts = line
            .iter()
            .take(32)
            .take_while(|b| b.is_ascii_digit() || b"-:,. T/".contains(b))
            .count();
        if let Some(l) = word_level(&line[ts..]) {
            return Some(l);
        }
        let head = &line[..line.len().min(96)];
        for i in find_all(head, b" - ") {
            if let Some(l) = word_level(&line[i + 3..]) {
                return Some(l);
            }
        }
        return None;
    }
    // Go slog / logrus: `time=... level=INFO ...`.
    let head = &line[..line.len().min(96)];
    let i = find(head, b"level=")?;
    if i > 0 && head[i - 1] != b' ' {
        return None;
    }
    let v = &line[i + 6..];
    let v = v.strip_prefix(b"\"").unwrap_or(v);
    let n = v
        .iter()
        .take(9)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    let word: Vec<u8> = v[..n].to_ascii_uppercase();
    named(&word)
}

/// A level word followed by a space, `:` or `]`.
fn word_level(s: &[u8]) -> Option<Level> {
    let n = s
        .iter()
        .take(9)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    match s.get(n) {
        Some(b' ' | b':' | b']') | None if n > 0 => named(&s[..n]),
        _ => None,
    }
}

fn named(word: &[u8]) -> Option<Level> {
    Some(match word {
        b"TRACE" => Level::Trace,
        b"DEBUG" => Level::Debug,
        b"INFO" => Level::Info,
        b"WARN" | b"WARNING" => Level::Warning,
        b"ERROR" => Level::Error,
        b"CRITICAL" | b"FATAL" | b"PANIC" => Level::Critical,
        _ => return None,
    })
}

/// Keeps records at or above a minimum level, with their continuation lines.
#[derive(Debug, Clone)]
pub struct Filter {
    min: Level,
    /// Whether the current record is kept.
    keep: bool,
    /// Inside a traceback: the first unindented line after it (the exception) still belongs to it.
    in_traceback: bool,
}

impl Filter {
    pub fn new(min: Level) -> Self {
        Self {
            min,
            keep: true,
            in_traceback: false,
        }
    }

    /// Whether every line is kept (no parsing needed).
    pub fn keeps_all(&self) -> bool {
        self.min == Level::Trace
    }

    /// Whether `line` is kept.
    pub fn keep(&mut self, line: &[u8]) -> bool {
        match classify(line) {
            Kind::Continuation => self.keep,
            Kind::Traceback => {
                // A traceback with no kept record above it (printed on its own, or under a
                // record that was filtered out) counts as an error.
                if !self.in_traceback && !self.keep {
                    self.keep = Level::Error >= self.min;
                }
                self.in_traceback = true;
                self.keep
            }
            Kind::Record(level) => {
                self.in_traceback = false;
                self.keep = level >= self.min;
                self.keep
            }
            Kind::Unknown if self.in_traceback => {
                // The exception line ends the traceback.
                self.in_traceback = false;
                self.keep
            }
            Kind::Unknown => {
                self.keep = true;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_formats() {
        let cases: &[(&str, Option<Level>)] = &[
            ("INFO:image_edit:loading models", Some(Level::Info)),
            ("WARNING:root:CUDA is not available", Some(Level::Warning)),
            (
                "INFO:     127.0.0.1:5000 - \"GET / HTTP/1.1\" 200 OK",
                Some(Level::Info),
            ),
            (
                "ERROR:    Exception in ASGI application",
                Some(Level::Error),
            ),
            ("DEBUG 05-12 11:43:00 [core.py:12] step", Some(Level::Debug)),
            (
                "INFO 05-12 11:43:00 [logger.py:39] Received request",
                Some(Level::Info),
            ),
            (
                "time=2025-05-12T11:43:00.000+08:00 level=WARN source=routes.go:1 msg=x",
                Some(Level::Warning),
            ),
            (
                "time=2025-05-12T11:43:00.000+08:00 level=TRACE msg=\"completion\"",
                Some(Level::Trace),
            ),
            ("level=info msg=started", Some(Level::Info)),
            (
                "[GIN] 2025/05/12 - 11:43:00 | 200 |  1.2s | 127.0.0.1 | POST \"/api/chat\"",
                Some(Level::Info),
            ),
            ("[GIN-debug] GET /api/tags", Some(Level::Debug)),
            (
                "2025-05-12 11:43:00,123 - httpx - INFO - HTTP Request",
                Some(Level::Info),
            ),
            ("2025-05-12 11:43:00 ERROR boom", Some(Level::Error)),
            ("I0512 11:43:00.123456 1 main.go:1] hi", Some(Level::Info)),
            ("got prompt", None),
            ("* Running on local URL:  http://127.0.0.1:7860", None),
            ("Prompt executed in 1.23 seconds", None),
            ("INFORMATION: not a level", None),
        ];
        for (line, want) in cases {
            assert_eq!(level_of(line.as_bytes()), *want, "{line}");
        }
        assert_eq!(
            classify(b"(APIServer pid=7) WARNING 05-12 11:43:00 [x.py:1] y"),
            Kind::Record(Level::Warning)
        );
    }

    fn run(min: Level, text: &str) -> Vec<&str> {
        let mut f = Filter::new(min);
        text.lines().filter(|l| f.keep(l.as_bytes())).collect()
    }

    #[test]
    fn tracebacks_belong_to_their_record() {
        let text = "INFO:app:start\n\
                    DEBUG:app:details\n  more details\n\
                    ERROR:app:edit failed\nTraceback (most recent call last):\n  File \"a.py\", line 1, in f\n    g()\nValueError: bad\n\
                    INFO:app:after\n\
                    got prompt\n";
        assert_eq!(
            run(Level::Warning, text),
            [
                "ERROR:app:edit failed",
                "Traceback (most recent call last):",
                "  File \"a.py\", line 1, in f",
                "    g()",
                "ValueError: bad",
                "got prompt"
            ]
        );
        assert_eq!(run(Level::Info, text).len(), 8);
        assert_eq!(run(Level::Trace, text).len(), 10);
    }

    #[test]
    fn a_lone_traceback_is_an_error() {
        let text = "INFO:app:x\nTraceback (most recent call last):\n  File \"a.py\"\nKeyError: 'k'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"b.py\"\nRuntimeError: r\nINFO:app:y\n";
        let kept = run(Level::Warning, text);
        assert_eq!(kept.first(), Some(&"Traceback (most recent call last):"));
        assert_eq!(kept.last(), Some(&"RuntimeError: r"));
        assert_eq!(kept.len(), 9);
        assert!(run(Level::Critical, text).is_empty());
    }
}
