//! Log lines in the shapes real Python AI services print them: Python `logging`'s default
//! format (`INFO:image_edit:...`), uvicorn's access lines, and tracebacks. INFO goes to stdout,
//! WARNING and above to stderr, one `write` and one flush per line, so a supervisor reading the
//! pipes sees whole lines as soon as they are printed.

use std::io::Write;

/// The logger name, as in `logging.getLogger("image_edit")`.
pub const LOGGER: &str = "image_edit";

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(line.as_bytes());
    let _ = o.flush();
}

fn err(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(line.as_bytes());
    let _ = e.flush();
}

/// A plain line on stdout (Gradio's own banner lines have no level).
pub fn print(msg: &str) {
    out(&format!("{msg}\n"));
}

/// `INFO:image_edit:msg` on stdout.
pub fn info(msg: &str) {
    out(&format!("INFO:{LOGGER}:{msg}\n"));
}

/// `WARNING:image_edit:msg` on stderr.
pub fn warning(msg: &str) {
    err(&format!("WARNING:{LOGGER}:{msg}\n"));
}

/// `ERROR:image_edit:msg` on stderr.
pub fn error(msg: &str) {
    err(&format!("ERROR:{LOGGER}:{msg}\n"));
}

/// A uvicorn server line: `INFO:     msg` on stdout.
pub fn server(msg: &str) {
    out(&format!("INFO:     {msg}\n"));
}

/// A uvicorn access line, e.g.
/// `INFO:     127.0.0.1:54321 - "POST /api/edit?prompt=make+it+warm HTTP/1.1" 200 OK`.
pub fn access(client: &str, method: &str, target: &str, version: &str, status: u16) {
    out(&format!(
        "INFO:     {client} - \"{method} {target} HTTP/{version}\" {status} {}\n",
        reason(status)
    ));
}

/// An `ERROR` line followed by a Python traceback, written to stderr in one piece.
///
/// `frames` are `(file, line, function, source line)`.
pub fn traceback(msg: &str, frames: &[(&str, u32, &str, String)], exception: &str) {
    let mut s = format!("ERROR:{LOGGER}:{msg}\nTraceback (most recent call last):\n");
    for (file, line, func, src) in frames {
        s.push_str(&format!(
            "  File \"{file}\", line {line}, in {func}\n    {src}\n"
        ));
    }
    s.push_str(exception);
    s.push('\n');
    err(&s);
}

/// The reason phrase uvicorn prints after a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds one and no double quote,
/// backslash escapes for quotes, backslashes and control characters.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut r = String::with_capacity(s.len() + 2);
    r.push(quote);
    for c in s.chars() {
        match c {
            '\\' => r.push_str("\\\\"),
            '\n' => r.push_str("\\n"),
            '\r' => r.push_str("\\r"),
            '\t' => r.push_str("\\t"),
            c if c == quote => {
                r.push('\\');
                r.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                r.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => r.push(c),
        }
    }
    r.push(quote);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_repr_matches_python() {
        assert_eq!(py_repr("make it warm"), "'make it warm'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(py_repr("a\nb\\c\x01"), "'a\\nb\\\\c\\x01'");
        assert_eq!(py_repr("café ☕"), "'café ☕'");
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(413), "Request Entity Too Large");
    }
}
