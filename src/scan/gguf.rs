//! GGUF (llama.cpp): the header, the key/value metadata and the tensor table are checked against
//! the file's size before anything is trusted, and chat templates (Jinja, rendered by the
//! server) are checked for template injection.

use std::collections::HashSet;

use super::finding::{Finding, Severity};
use super::pickle::escape;

/// Upper bounds on the counts (llama.cpp's own are looser; real models are far below these).
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KVS: u64 = 1 << 20;
const MAX_DIMS: u32 = 4;
/// GGML_MAX_NAME, NUL included.
const MAX_NAME: usize = 64;

/// (block size, bytes per block) of each ggml type.
fn ggml_type(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        _ => return None,
    })
}

struct Cur<'a> {
    d: &'a [u8],
    at: usize,
}

#[derive(Debug)]
struct Oob(&'static str, usize);

impl<'a> Cur<'a> {
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Oob> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&e| e <= self.d.len())
            .ok_or(Oob(what, self.at))?;
        let s = &self.d[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Oob> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, Oob> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    fn string(&mut self, what: &'static str) -> Result<&'a [u8], Oob> {
        let n = self.u64(what)?;
        self.take(n, what)
    }
}

/// Fixed sizes of scalar value types (8 = string, 9 = array are variable).
fn scalar_size(t: u32) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

enum Val<'a> {
    Str(&'a [u8]),
    U(u64),
    Other,
}

fn bad(sev: Severity, rule: &'static str, msg: impl Into<String>, at: usize) -> Finding {
    Finding::new(sev, rule, msg).at(at as u64)
}

/// Checks a GGUF file given as its whole content.
pub fn check(data: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(Oob(what, at)) = walk(data, &mut out) {
        out.push(bad(
            Severity::Medium,
            "gguf/bounds",
            format!("{what} runs past the end of the file"),
            at,
        ));
    }
    out
}

fn walk(data: &[u8], out: &mut Vec<Finding>) -> Result<(), Oob> {
    let mut c = Cur { d: data, at: 0 };
    if c.take(4, "the magic")? != b"GGUF" {
        out.push(bad(Severity::Medium, "gguf/header", "no GGUF magic", 0));
        return Ok(());
    }
    let version = c.u32("the version")?;
    if !(2..=3).contains(&version) {
        out.push(bad(
            Severity::Medium,
            "gguf/header",
            format!("version {version} is not supported (2 and 3 are)"),
            4,
        ));
        return Ok(());
    }
    let n_tensors = c.u64("the tensor count")?;
    let n_kv = c.u64("the key/value count")?;
    if n_tensors > MAX_TENSORS || n_kv > MAX_KVS {
        out.push(bad(
            Severity::Medium,
            "gguf/header",
            format!("absurd counts: {n_tensors} tensors, {n_kv} key/value pairs"),
            8,
        ));
        return Ok(());
    }
    let mut keys = HashSet::new();
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key_at = c.at;
        let key = c.string("a key")?;
        let shown = escape(&String::from_utf8_lossy(key));
        if key.is_empty() {
            out.push(bad(Severity::Medium, "gguf/key", "an empty key", key_at));
        } else if !keys.insert(key) {
            out.push(bad(
                Severity::Medium,
                "gguf/key",
                format!("the key {shown} appears more than once"),
                key_at,
            ));
        }
        let t = c.u32("a value type")?;
        let v = value(&mut c, t, out, &shown, true)?;
        match (key, v) {
            (b"general.alignment", Val::U(a)) => {
                if a == 0 || !a.is_power_of_two() || t != 4 {
                    out.push(bad(
                        Severity::Medium,
                        "gguf/alignment",
                        format!("general.alignment {a} is not a power of two (u32)"),
                        key_at,
                    ));
                } else {
                    alignment = a;
                }
            }
            (b"general.alignment", _) => out.push(bad(
                Severity::Medium,
                "gguf/alignment",
                "general.alignment is not an integer",
                key_at,
            )),
            (k, Val::Str(s)) if k.starts_with(b"tokenizer.chat_template") => {
                if let Some(why) = template_injection(&String::from_utf8_lossy(s)) {
                    out.push(bad(
                        Severity::Critical,
                        "gguf/chat-template",
                        format!("{shown} looks like template injection: {why}"),
                        key_at,
                    ));
                }
            }
            _ => {}
        }
    }
    let mut names = HashSet::new();
    let mut tensors = Vec::new();
    for _ in 0..n_tensors {
        let at = c.at;
        let name = c.string("a tensor name")?;
        let shown = escape(&String::from_utf8_lossy(name));
        if name.len() >= MAX_NAME {
            out.push(bad(
                Severity::Medium,
                "gguf/tensor",
                format!(
                    "tensor name {shown} is {} bytes (at most {})",
                    name.len(),
                    MAX_NAME - 1
                ),
                at,
            ));
        }
        if !names.insert(name) {
            out.push(bad(
                Severity::Medium,
                "gguf/tensor",
                format!("tensor {shown} appears more than once"),
                at,
            ));
        }
        let n_dims = c.u32("a tensor's dimension count")?;
        if n_dims > MAX_DIMS {
            out.push(bad(
                Severity::Medium,
                "gguf/tensor",
                format!("tensor {shown} has {n_dims} dimensions (at most {MAX_DIMS})"),
                at,
            ));
            return Ok(());
        }
        let mut elems = Some(1u64);
        let mut first = 1;
        for d in 0..n_dims {
            let n = c.u64("a tensor dimension")?;
            if d == 0 {
                first = n;
            }
            if n > i64::MAX as u64 {
                elems = None;
            }
            elems = elems.and_then(|e| e.checked_mul(n));
        }
        let ty = c.u32("a tensor type")?;
        let offset = c.u64("a tensor offset")?;
        let Some((block, type_size)) = ggml_type(ty) else {
            out.push(bad(
                Severity::Medium,
                "gguf/tensor",
                format!("tensor {shown} has unknown type {ty}"),
                at,
            ));
            continue;
        };
        let bytes = match elems {
            Some(e) if first % block == 0 => (e / block).checked_mul(type_size),
            Some(_) => {
                out.push(bad(
                    Severity::Medium,
                    "gguf/tensor",
                    format!("tensor {shown}: the first dimension is not a multiple of the block size {block}"),
                    at,
                ));
                continue;
            }
            None => None,
        };
        let Some(bytes) = bytes else {
            out.push(bad(
                Severity::Medium,
                "gguf/tensor",
                format!("tensor {shown}: its size overflows"),
                at,
            ));
            continue;
        };
        tensors.push((shown, offset, bytes, at));
    }
    let data_start = (c.at as u64).div_ceil(alignment) * alignment;
    let mut expect = 0u64;
    for (name, offset, bytes, at) in tensors {
        if offset != expect {
            out.push(bad(
                Severity::Medium,
                "gguf/offsets",
                format!(
                    "tensor {name} is at offset {offset}, the running aligned total is {expect}"
                ),
                at,
            ));
        }
        let end = data_start
            .checked_add(offset)
            .and_then(|s| s.checked_add(bytes));
        if end.is_none_or(|e| e > data.len() as u64) {
            out.push(bad(
                Severity::Medium,
                "gguf/offsets",
                format!("tensor {name}'s data runs past the end of the file"),
                at,
            ));
        }
        expect = offset
            .checked_add(bytes)
            .map(|e| e.div_ceil(alignment) * alignment)
            .unwrap_or(u64::MAX);
    }
    Ok(())
}

fn value<'a>(
    c: &mut Cur<'a>,
    t: u32,
    out: &mut Vec<Finding>,
    key: &str,
    top: bool,
) -> Result<Val<'a>, Oob> {
    match t {
        8 => Ok(Val::Str(c.string("a string value")?)),
        9 => {
            let at = c.at;
            let et = c.u32("an array type")?;
            let n = c.u64("an array length")?;
            if !top || et == 9 {
                out.push(bad(
                    Severity::Medium,
                    "gguf/array",
                    format!("{key}: nested arrays"),
                    at,
                ));
                return Err(Oob("a nested array", at));
            }
            if et == 8 {
                // Each string needs at least its 8-byte length.
                if n.checked_mul(8)
                    .is_none_or(|b| b > (c.d.len() - c.at) as u64)
                {
                    return Err(Oob("a string array", at));
                }
                for _ in 0..n {
                    c.string("a string in an array")?;
                }
            } else {
                let Some(sz) = scalar_size(et) else {
                    out.push(bad(
                        Severity::Medium,
                        "gguf/type",
                        format!("{key}: unknown array type {et}"),
                        at,
                    ));
                    return Err(Oob("an array of an unknown type", at));
                };
                let total = n.checked_mul(sz).ok_or(Oob("an array", at))?;
                c.take(total, "an array")?;
            }
            Ok(Val::Other)
        }
        _ => {
            let at = c.at;
            let Some(sz) = scalar_size(t) else {
                out.push(bad(
                    Severity::Medium,
                    "gguf/type",
                    format!("{key}: unknown value type {t}"),
                    at,
                ));
                return Err(Oob("a value of an unknown type", at));
            };
            let b = c.take(sz, "a value")?;
            let mut buf = [0u8; 8];
            buf[..b.len()].copy_from_slice(b);
            Ok(Val::U(u64::from_le_bytes(buf)))
        }
    }
}

/// Why a Jinja chat template looks like template injection, if it does.
pub fn template_injection(t: &str) -> Option<String> {
    // Undo the usual disguises: escapes of '_' and string concatenation.
    let norm = t
        .replace("\\x5f", "_")
        .replace("\\x5F", "_")
        .replace("\\u005f", "_")
        .replace("\\u005F", "_")
        .replace("\\137", "_");
    let squeezed: String = norm
        .chars()
        .filter(|c| !matches!(c, '\'' | '"' | '~' | '+' | ' ' | '\t' | '\n'))
        .collect();
    const DUNDERS: &[&str] = &[
        "__class__",
        "__globals__",
        "__builtins__",
        "__subclasses__",
        "__mro__",
        "__base__",
        "__bases__",
        "__init__",
        "__import__",
        "__getattribute__",
        "__dict__",
        "__code__",
        "__reduce__",
        "__loader__",
        "__spec__",
    ];
    for d in DUNDERS {
        if squeezed.contains(d) {
            return Some(format!("it reaches {d}"));
        }
    }
    let lower = norm.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "popen",
        "subprocess",
        "os.system",
        "import os",
        "eval(",
        "exec(",
        "|attr(",
        "| attr(",
        "lipsum",
        "cycler",
        "joiner",
        "self._",
        "request.application",
        "config.items",
    ];
    for w in WORDS {
        if lower.contains(w) {
            return Some(format!("it uses {w}"));
        }
    }
    None
}
