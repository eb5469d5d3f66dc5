//! Terminal output helpers: escaping untrusted strings (file names, log text) before they reach
//! a terminal.

use std::borrow::Cow;
use std::path::Path;

/// Escapes control characters and invalid UTF-8 so a hostile file name cannot move the cursor,
/// rewrite earlier lines or change the terminal's title.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path made safe for display.
pub fn path(p: &Path) -> String {
    escape(&p.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_control_characters() {
        assert_eq!(super::escape("plain"), "plain");
        assert_eq!(super::escape("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
