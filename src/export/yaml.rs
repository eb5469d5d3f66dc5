//! A small YAML writer for the manifests: block mappings and sequences in the order they were
//! built, plain scalars only where YAML 1.1 and 1.2 readers agree on them, every other string
//! double-quoted with JSON escapes (a JSON string is a valid YAML double-quoted scalar), and
//! multi-line text (the policy in the ConfigMap) as a literal block.

use std::fmt::Write as _;

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Node {
    /// An empty mapping, to be filled with [`Node::set`].
    pub fn map() -> Self {
        Self::Map(Vec::new())
    }

    /// Adds a key (builder style). Panics if `self` is not a mapping: a programming error.
    pub fn with(mut self, key: &str, value: impl Into<Node>) -> Self {
        self.set(key, value);
        self
    }

    /// Adds or replaces a key of a mapping.
    pub fn set(&mut self, key: &str, value: impl Into<Node>) {
        let Self::Map(entries) = self else {
            panic!("Node::set on a non-mapping");
        };
        let value = value.into();
        if let Some(e) = entries.iter_mut().find(|(k, _)| k == key) {
            e.1 = value;
        } else {
            entries.push((key.to_owned(), value));
        }
    }

    /// The value of a key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Self::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a path of keys (and, in sequences, indexes).
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        let mut n = self;
        for seg in path {
            n = match n {
                Self::Map(_) => n.get(seg)?,
                Self::Seq(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(n)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Node {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for Node {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<&String> for Node {
    fn from(s: &String) -> Self {
        Self::Str(s.clone())
    }
}

impl From<i64> for Node {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<u32> for Node {
    fn from(n: u32) -> Self {
        Self::Int(i64::from(n))
    }
}

impl From<u16> for Node {
    fn from(n: u16) -> Self {
        Self::Int(i64::from(n))
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<Vec<Node>> for Node {
    fn from(v: Vec<Node>) -> Self {
        Self::Seq(v)
    }
}

/// Renders documents separated by `---`.
pub fn documents(docs: &[Node]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        block(&mut out, d, 0);
    }
    out
}

/// Renders one value as a YAML document body.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    block(&mut out, node, 0);
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a value that starts on its own line at `ind`.
fn block(out: &mut String, node: &Node, ind: usize) {
    match node {
        Node::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                indent(out, ind);
                key(out, k);
                out.push(':');
                after_key(out, v, ind);
            }
        }
        Node::Seq(items) if !items.is_empty() => {
            for item in items {
                indent(out, ind);
                out.push('-');
                match item {
                    Node::Map(entries) if !entries.is_empty() => {
                        // The first key goes on the dash's line, the rest below it.
                        out.push(' ');
                        let mut first = true;
                        for (k, v) in entries {
                            if !first {
                                indent(out, ind + 2);
                            }
                            first = false;
                            key(out, k);
                            out.push(':');
                            after_key(out, v, ind + 2);
                        }
                    }
                    Node::Seq(inner) if !inner.is_empty() => {
                        out.push('\n');
                        block(out, item, ind + 2);
                    }
                    other => {
                        out.push(' ');
                        inline(out, other, ind + 2);
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            indent(out, ind);
            inline(out, other, ind);
            out.push('\n');
        }
    }
}

/// Writes what follows `key:` (a mapping's value at indentation `ind` of the key).
fn after_key(out: &mut String, v: &Node, ind: usize) {
    match v {
        Node::Map(e) if !e.is_empty() => {
            out.push('\n');
            block(out, v, ind + 2);
        }
        Node::Seq(s) if !s.is_empty() => {
            out.push('\n');
            block(out, v, ind + 2);
        }
        other => {
            out.push(' ');
            inline(out, other, ind + 2);
            out.push('\n');
        }
    }
}

/// A scalar or an empty collection, on the current line. `ind` is where a literal block's
/// lines go.
fn inline(out: &mut String, node: &Node, ind: usize) {
    match node {
        Node::Map(_) => out.push_str("{}"),
        Node::Seq(_) => out.push_str("[]"),
        Node::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Str(s) => string(out, s, ind),
    }
}

fn key(out: &mut String, k: &str) {
    if is_plain(k) {
        out.push_str(k);
    } else {
        out.push_str(&serde_json::to_string(k).expect("a string always serializes"));
    }
}

fn string(out: &mut String, s: &str, ind: usize) {
    if s.contains('\n') && literal_ok(s) {
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s.ends_with("\n\n") {
            "+"
        } else {
            ""
        };
        // An explicit indentation indicator keeps a first line that starts with a space.
        let _ = write!(out, "|{}{chomp}", if s.starts_with(' ') { "2" } else { "" });
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(out, ind);
                out.push_str(line);
            }
        }
    } else if is_plain(s) {
        out.push_str(s);
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
    }
}

/// Whether text can be a literal block: printable, no tabs or carriage returns, no trailing
/// spaces on a line (they would survive, but a reader would not see them), no BOM.
fn literal_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c == '\n' || (!c.is_control() && c != '\u{feff}'))
        && s.split('\n').all(|l| !l.ends_with(' '))
}

/// Whether a string can be written unquoted and still read back as the same string by YAML 1.1
/// and 1.2 readers: a conservative character set, not a number, boolean or null look-alike.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "y" | "n"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "true"
            | "false"
            | "null"
            | "nan"
            | ".nan"
            | "inf"
            | ".inf"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_sequences_and_scalars() {
        let doc = Node::map()
            .with("apiVersion", "v1")
            .with("kind", "ConfigMap")
            .with(
                "metadata",
                Node::map()
                    .with("name", "x")
                    .with("labels", Node::map().with("app.kubernetes.io/name", "x")),
            )
            .with(
                "items",
                vec![
                    Node::map().with("a", 1i64).with("b", true),
                    Node::from("yes"),
                    Node::from("8080"),
                    Node::Seq(vec![Node::from("ALL")]),
                ],
            )
            .with("empty", Node::Seq(vec![]))
            .with("none", Node::map());
        assert_eq!(
            render(&doc),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    \
             app.kubernetes.io/name: x\nitems:\n  - a: 1\n    b: true\n  - \"yes\"\n  - \"8080\"\n  \
             -\n    - ALL\nempty: []\nnone: {}\n"
        );
    }

    #[test]
    fn strings_that_would_change_meaning_are_quoted() {
        for s in [
            "", "no", "On", "null", "1.5", "0o440", "-x", "a: b", "#c", "x y", "*a", "&a", "!t",
            "{}", "[", "'", "\"", "é",
        ] {
            let out = render(&Node::from(s));
            assert!(out.starts_with('"'), "{s:?} -> {out}");
            let back: String = serde_json::from_str(out.trim_end()).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(render(&Node::from("/srv/app")), "/srv/app\n");
    }

    #[test]
    fn multi_line_text_is_a_literal_block() {
        let doc = Node::map().with(
            "data",
            Node::map().with("warden.toml", "[service]\nname = \"x\"\n\n# end\n"),
        );
        assert_eq!(
            render(&doc),
            "data:\n  warden.toml: |\n    [service]\n    name = \"x\"\n\n    # end\n"
        );
        let no_newline = render(&Node::map().with("k", "a\nb"));
        assert_eq!(no_newline, "k: |-\n  a\n  b\n");
        let tabs = render(&Node::map().with("k", "a\tb\nc"));
        assert_eq!(tabs, "k: \"a\\tb\\nc\"\n");
    }
}
