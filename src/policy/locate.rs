//! Finding where a key sits in the policy text, so that errors found after deserialization
//! (paths, overlaps) still carry a line and column.

use toml::de::{DeTable, DeValue};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Idx(usize),
}

/// 1-based line and column of a byte offset (columns count characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Byte offset of the value at `path`, or of the deepest ancestor that exists.
pub fn value_offset(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut best = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for seg in path {
        let next = match (*seg, table, value) {
            (Seg::Key(k), Some(t), _) => {
                t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v)
            }
            (Seg::Idx(i), _, Some(DeValue::Array(a))) => a.get(i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span().start);
        value = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let text = "[service]\nname = \"x\"\n\n[[tier]]\npath = \"a\"\n[[tier]]\npath = \"b\"\n";
        let off = value_offset(text, &[Seg::Key("tier"), Seg::Idx(1), Seg::Key("path")]).unwrap();
        assert_eq!(line_col(text, off), (7, 8));
        let off = value_offset(text, &[Seg::Key("service"), Seg::Key("name")]).unwrap();
        assert_eq!(line_col(text, off), (2, 8));
    }
}
