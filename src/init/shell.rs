//! Just enough of POSIX shell syntax to read a start script: words with their quoting,
//! expansions marked, redirections dropped, and simple commands split on `;`, `&&`, `|`, `&`
//! and newlines. Nothing is ever executed or expanded.

/// Marks the start of an expansion (`$NAME`, `${...}`, `$(...)`, backquotes) inside a word's
/// text, so it can be told from a literal `$`. A private-use character a script never holds.
pub const EXPANSION: char = '\u{E000}';

/// One word of a simple command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text with quotes removed; expansions kept as written after an [`EXPANSION`] mark.
    pub text: String,
    /// Whether any part was quoted (a quoted `A=b` is not an assignment).
    pub quoted: bool,
}

impl Word {
    /// Whether the word holds an expansion.
    #[cfg(test)]
    pub fn expands(&self) -> bool {
        self.text.contains(EXPANSION)
    }

    /// The text as written in the script (expansion marks removed).
    pub fn display(&self) -> String {
        self.text.replace(EXPANSION, "")
    }
}

/// A simple command: its words (redirections removed), the line it starts on, and whether it
/// was put in the background with `&`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simple {
    pub words: Vec<Word>,
    pub line: usize,
    pub background: bool,
    /// Whether it had redirections (dropped from `words`).
    pub redirected: bool,
}

/// Splits a script into simple commands.
pub fn parse(src: &str) -> Vec<Simple> {
    Lexer {
        chars: src.chars().collect(),
        at: 0,
        line: 1,
        heredoc: None,
    }
    .run()
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    line: usize,
    /// The delimiter of a here-document whose body starts at the next line.
    heredoc: Option<String>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn run(mut self) -> Vec<Simple> {
        let mut out = Vec::new();
        let mut cur = Simple {
            words: Vec::new(),
            line: 1,
            background: false,
            redirected: false,
        };
        let finish = |cur: &mut Simple, out: &mut Vec<Simple>, background: bool, line: usize| {
            let mut done = std::mem::replace(
                cur,
                Simple {
                    words: Vec::new(),
                    line,
                    background: false,
                    redirected: false,
                },
            );
            if !done.words.is_empty() {
                done.background = background;
                out.push(done);
            }
        };
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' => {
                    self.bump();
                }
                '\\' if self.peek(1) == Some('\n') => {
                    self.bump();
                    self.bump();
                }
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                '\n' | ';' | '(' | ')' => {
                    self.bump();
                    if c == '\n'
                        && let Some(delim) = self.heredoc.take()
                    {
                        self.skip_heredoc(&delim);
                    }
                    let line = self.line;
                    finish(&mut cur, &mut out, false, line);
                }
                '|' => {
                    self.bump();
                    if self.peek(0) == Some('|') {
                        self.bump();
                    }
                    let line = self.line;
                    finish(&mut cur, &mut out, false, line);
                }
                '&' if self.peek(1) == Some('&') => {
                    self.bump();
                    self.bump();
                    let line = self.line;
                    finish(&mut cur, &mut out, false, line);
                }
                '&' if self.peek(1) == Some('>') => {
                    self.bump();
                    self.redirection();
                    cur.redirected = true;
                }
                '&' => {
                    self.bump();
                    let line = self.line;
                    finish(&mut cur, &mut out, true, line);
                }
                '<' | '>' => {
                    self.redirection();
                    cur.redirected = true;
                }
                _ => {
                    if cur.words.is_empty() {
                        cur.line = self.line;
                    }
                    let w = self.word();
                    // `2>file`: a word of digits right before a redirection is its fd.
                    let fd = !w.quoted
                        && !w.text.is_empty()
                        && w.text.bytes().all(|b| b.is_ascii_digit())
                        && matches!(self.peek(0), Some('<' | '>'));
                    if fd {
                        self.redirection();
                        cur.redirected = true;
                    } else {
                        cur.words.push(w);
                    }
                }
            }
        }
        let line = self.line;
        finish(&mut cur, &mut out, false, line);
        out
    }

    /// Skips a redirection operator (at `<`/`>`, the `&` of `&>` already consumed) and its
    /// target word, or the fd of `>&2`.
    fn redirection(&mut self) {
        let first = self.bump();
        let mut heredoc = false;
        match (first, self.peek(0)) {
            (Some('<'), Some('<')) => {
                self.bump();
                heredoc = true;
                if self.peek(0) == Some('-') {
                    self.bump();
                }
            }
            (_, Some('>' | '|' | '&')) => {
                let amp = self.peek(0) == Some('&');
                self.bump();
                if amp {
                    // `>&2`, `>&-`: a descriptor, not a file.
                    while self.peek(0).is_some_and(|c| c.is_ascii_digit() || c == '-') {
                        self.bump();
                    }
                    return;
                }
            }
            _ => {}
        }
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.bump();
        }
        if !matches!(self.peek(0), None | Some('\n' | ';' | '&' | '|')) {
            let delim = self.word();
            if heredoc {
                self.heredoc = Some(delim.display());
            }
        }
    }

    /// Skips the body of a here-document, from the start of a line through `delim`.
    fn skip_heredoc(&mut self, delim: &str) {
        while self.peek(0).is_some() {
            let start = self.at;
            while self.peek(0).is_some_and(|c| c != '\n') {
                self.bump();
            }
            let line: String = self.chars[start..self.at].iter().collect();
            self.bump();
            if line.trim_start_matches('\t') == delim {
                break;
            }
        }
    }

    fn word(&mut self) -> Word {
        let mut w = Word {
            text: String::new(),
            quoted: false,
        };
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some('\n') | None => {}
                        Some(c) => {
                            w.text.push(c);
                            w.quoted = true;
                        }
                    }
                }
                '\'' => {
                    self.bump();
                    w.quoted = true;
                    while let Some(c) = self.bump() {
                        if c == '\'' {
                            break;
                        }
                        w.text.push(c);
                    }
                }
                '"' => {
                    self.bump();
                    w.quoted = true;
                    while let Some(c) = self.peek(0) {
                        match c {
                            '"' => {
                                self.bump();
                                break;
                            }
                            '\\' if matches!(self.peek(1), Some('$' | '`' | '"' | '\\')) => {
                                self.bump();
                                w.text.extend(self.bump());
                            }
                            '\\' if self.peek(1) == Some('\n') => {
                                self.bump();
                                self.bump();
                            }
                            '$' | '`' => self.expansion(&mut w.text),
                            _ => {
                                self.bump();
                                w.text.push(c);
                            }
                        }
                    }
                }
                '$' | '`' => self.expansion(&mut w.text),
                _ => {
                    self.bump();
                    w.text.push(c);
                }
            }
        }
        w
    }

    /// Copies an expansion as written, after an [`EXPANSION`] mark. A lone `$` is literal.
    fn expansion(&mut self, out: &mut String) {
        let start = self.at;
        let first = self.bump();
        match (first, self.peek(0)) {
            (Some('`'), _) => {
                while let Some(c) = self.bump() {
                    if c == '`' {
                        break;
                    }
                }
            }
            (Some('$'), Some('(' | '{')) => {
                let open = self.bump().expect("peeked");
                let close = if open == '(' { ')' } else { '}' };
                let mut depth = 1;
                while let Some(c) = self.bump() {
                    if c == open {
                        depth += 1;
                    } else if c == close {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
            }
            (Some('$'), Some(c)) if c.is_ascii_alphanumeric() || "_@*#?$!-".contains(c) => {
                if c.is_ascii_alphabetic() || c == '_' {
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.bump();
                    }
                } else {
                    self.bump();
                }
            }
            _ => {
                out.push('$');
                return;
            }
        }
        out.push(EXPANSION);
        out.extend(&self.chars[start..self.at]);
    }
}

/// Replaces the expansions of `text` that are plain variables found by `lookup`
/// (`$NAME`, `${NAME}`, `${NAME:-default}`); `None` if any expansion stays unresolved.
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    let mut parts = text.split(EXPANSION);
    out.push_str(parts.next().unwrap_or(""));
    for part in parts {
        let rest = part.strip_prefix('$')?;
        let (value, tail) = if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}')?;
            let body = &inner[..end];
            let value = match body.split_once(":-").or_else(|| body.split_once('-')) {
                Some((name, default)) if is_name(name) => {
                    lookup(name).unwrap_or_else(|| default.to_owned())
                }
                _ if is_name(body) => lookup(body)?,
                _ => return None,
            };
            (value, &inner[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            let name = &rest[..end];
            if !is_name(name) {
                return None;
            }
            (lookup(name)?, &rest[end..])
        };
        out.push_str(&value);
        out.push_str(tail);
    }
    Some(out)
}

/// A shell variable name.
pub fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME=value` as an assignment word: the name and the value.
pub fn assignment(w: &Word) -> Option<(&str, &str)> {
    let (name, value) = w.text.split_once('=')?;
    is_name(name).then_some((name, value))
}

/// Quotes a word for display, the way a shell would need it.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &Simple) -> Vec<String> {
        s.words.iter().map(Word::display).collect()
    }

    #[test]
    fn splits_commands_and_drops_redirections() {
        let cmds = parse(
            "#!/bin/bash\ncd /srv/app && source venv/bin/activate\n\
             nohup python3 app_gradio.py --server-name 0.0.0.0 --share > gradio.log 2>&1 &\n\
             echo $! > app.pid\n",
        );
        assert_eq!(cmds.len(), 4);
        assert_eq!(words(&cmds[0]), ["cd", "/srv/app"]);
        assert_eq!(words(&cmds[1]), ["source", "venv/bin/activate"]);
        assert_eq!(
            words(&cmds[2]),
            [
                "nohup",
                "python3",
                "app_gradio.py",
                "--server-name",
                "0.0.0.0",
                "--share"
            ]
        );
        assert!(cmds[2].background && cmds[2].redirected);
        assert_eq!(cmds[2].line, 3);
        assert_eq!(words(&cmds[3]), ["echo", "$!"]);
        assert!(cmds[3].words[1].expands());
    }

    #[test]
    fn quoting_and_continuations() {
        let cmds =
            parse("python 'my app.py' \"--name=$USER\" a\\ b \\\n  --x &>/dev/null <in 2>>err\n");
        assert_eq!(cmds.len(), 1);
        assert_eq!(
            words(&cmds[0]),
            ["python", "my app.py", "--name=$USER", "a b", "--x"]
        );
        assert!(cmds[0].words[2].expands());
        assert!(!cmds[0].words[1].expands());
        let heredoc = parse("cat <<EOF > x\npython3 not-a-command.py\nEOF\nuvicorn a:b\n");
        assert_eq!(heredoc.len(), 2, "{heredoc:?}");
        assert_eq!(words(&heredoc[1]), ["uvicorn", "a:b"]);
    }

    #[test]
    fn substitutes_plain_variables() {
        let vars = |n: &str| (n == "PORT").then(|| "7860".to_owned());
        let w = &parse("x --port=$PORT ${PORT} ${HOST:-127.0.0.1} $(hostname) '$PORT'")[0].words;
        assert_eq!(substitute(&w[1].text, vars).unwrap(), "--port=7860");
        assert_eq!(substitute(&w[2].text, vars).unwrap(), "7860");
        assert_eq!(substitute(&w[3].text, vars).unwrap(), "127.0.0.1");
        assert_eq!(substitute(&w[4].text, vars), None);
        assert_eq!(substitute(&w[5].text, vars).unwrap(), "$PORT");
    }

    #[test]
    fn quotes_for_display() {
        assert_eq!(quote("app.py"), "app.py");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
