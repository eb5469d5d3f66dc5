//! safetensors: the header is bounded, valid JSON with no duplicate keys, and describes tensors
//! that tile the data section exactly, up to the end of the file.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use super::detect::SAFETENSORS_MAX_HEADER;
use super::finding::{Finding, Severity};

/// A JSON value that keeps every member of an object, duplicates included.
#[derive(Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// An array of non-negative integers, as `u64`s.
    fn u64s(&self) -> Option<Vec<u64>> {
        match self {
            J::Arr(a) => a
                .iter()
                .map(|x| match x {
                    J::Num(n) => n.as_u64(),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                Ok(J::Num(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<J, E> {
                Ok(J::Num(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<J, E> {
                serde_json::Number::from_f64(n)
                    .map(J::Num)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<J, E> {
                Ok(J::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(J::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<J, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = a.next_entry::<String, J>()? {
                    v.push((k, x));
                }
                Ok(J::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The first duplicated key in any object of the value, with its path.
pub fn duplicate_key(v: &J, path: &str) -> Option<String> {
    match v {
        J::Obj(members) => {
            let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Some(format!("{path}{}", w[0]));
            }
            members
                .iter()
                .find_map(|(k, x)| duplicate_key(x, &format!("{path}{k}.")))
        }
        J::Arr(items) => items.iter().find_map(|x| duplicate_key(x, path)),
        _ => None,
    }
}

/// Bits per element of each dtype.
fn dtype_bits(d: &str) -> Option<u64> {
    Some(match d {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

fn bad(sev: Severity, rule: &'static str, msg: impl Into<String>) -> Finding {
    Finding::new(sev, rule, msg)
}

/// Checks a safetensors file given as its whole content (`data`, usually mapped).
pub fn check(data: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(n) = data.get(..8) else {
        out.push(bad(
            Severity::Medium,
            "safetensors/header",
            "shorter than the 8-byte header length",
        ));
        return out;
    };
    let n = u64::from_le_bytes(n.try_into().expect("8 bytes"));
    if n > SAFETENSORS_MAX_HEADER {
        out.push(bad(
            Severity::Medium,
            "safetensors/header",
            format!("header length {n} is over the limit of {SAFETENSORS_MAX_HEADER}"),
        ));
        return out;
    }
    let data_start = 8 + n;
    if data_start > data.len() as u64 {
        out.push(bad(
            Severity::Medium,
            "safetensors/header",
            format!("header length {n} runs past the end of the file"),
        ));
        return out;
    }
    let header = &data[8..data_start as usize];
    if std::str::from_utf8(header).is_err() {
        out.push(bad(
            Severity::Medium,
            "safetensors/header",
            "the header is not UTF-8",
        ));
        return out;
    }
    if header.first() != Some(&b'{') {
        out.push(bad(
            Severity::Medium,
            "safetensors/header",
            "the header is not a JSON object",
        ));
        return out;
    }
    let v: J = match serde_json::from_slice(header) {
        Ok(v) => v,
        Err(e) => {
            out.push(bad(
                Severity::Medium,
                "safetensors/header",
                format!("the header is not valid JSON: {e}"),
            ));
            return out;
        }
    };
    if let Some(k) = duplicate_key(&v, "") {
        out.push(bad(
            Severity::Medium,
            "safetensors/duplicate-key",
            format!(
                "the header has the key {:?} more than once: readers disagree on which wins",
                k
            ),
        ));
    }
    let J::Obj(members) = v else {
        out.push(bad(
            Severity::Medium,
            "safetensors/header",
            "the header is not a JSON object",
        ));
        return out;
    };
    let data_len = data.len() as u64 - data_start;
    let mut spans: Vec<(u64, u64, String)> = Vec::new();
    for (name, info) in &members {
        let shown = super::pickle::escape(name);
        if name == "__metadata__" {
            let ok = match info {
                J::Obj(m) => m.iter().all(|(_, v)| matches!(v, J::Str(_))),
                _ => false,
            };
            if !ok {
                out.push(bad(
                    Severity::Medium,
                    "safetensors/metadata",
                    "__metadata__ must map strings to strings",
                ));
            }
            continue;
        }
        let J::Obj(fields) = info else {
            out.push(bad(
                Severity::Medium,
                "safetensors/tensor",
                format!("tensor {shown}: not an object"),
            ));
            continue;
        };
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
        for (f, _) in fields {
            if !matches!(f.as_str(), "dtype" | "shape" | "data_offsets") {
                out.push(bad(
                    Severity::Low,
                    "safetensors/tensor",
                    format!(
                        "tensor {shown}: unexpected field {:?}",
                        super::pickle::escape(f)
                    ),
                ));
            }
        }
        let dtype = match get("dtype") {
            Some(J::Str(d)) => d.as_str(),
            _ => {
                out.push(bad(
                    Severity::Medium,
                    "safetensors/tensor",
                    format!("tensor {shown}: no dtype"),
                ));
                continue;
            }
        };
        let Some(bits) = dtype_bits(dtype) else {
            out.push(bad(
                Severity::Medium,
                "safetensors/dtype",
                format!(
                    "tensor {shown}: unknown dtype {:?}",
                    super::pickle::escape(dtype)
                ),
            ));
            continue;
        };
        let shape = get("shape").and_then(J::u64s);
        let Some(shape) = shape else {
            out.push(bad(
                Severity::Medium,
                "safetensors/tensor",
                format!("tensor {shown}: shape is not a list of non-negative integers"),
            ));
            continue;
        };
        let offsets = get("data_offsets").and_then(J::u64s);
        let Some([begin, end]) = offsets
            .as_deref()
            .and_then(|o| <[u64; 2]>::try_from(o).ok())
        else {
            out.push(bad(
                Severity::Medium,
                "safetensors/tensor",
                format!("tensor {shown}: data_offsets is not [begin, end]"),
            ));
            continue;
        };
        if end < begin {
            out.push(bad(
                Severity::Medium,
                "safetensors/offsets",
                format!("tensor {shown}: data_offsets end before they begin"),
            ));
            continue;
        }
        let elems = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let nbits = elems.and_then(|e| e.checked_mul(bits));
        match nbits {
            Some(b) if b % 8 == 0 && b / 8 == end - begin => {}
            Some(b) => out.push(bad(
                Severity::Medium,
                "safetensors/size",
                format!(
                    "tensor {shown}: {dtype} x {shape:?} is {} bytes, data_offsets give {}",
                    b as f64 / 8.0,
                    end - begin
                ),
            )),
            None => out.push(bad(
                Severity::Medium,
                "safetensors/size",
                format!("tensor {shown}: the size of {dtype} x {shape:?} overflows"),
            )),
        }
        spans.push((begin, end, shown));
    }
    spans.sort();
    let mut expect = 0u64;
    for (begin, end, name) in &spans {
        if *begin != expect {
            out.push(bad(
                Severity::Medium,
                "safetensors/offsets",
                if *begin > expect {
                    format!("a gap of {} bytes before tensor {name}", begin - expect)
                } else {
                    format!("tensor {name} overlaps the tensor before it")
                },
            ));
        }
        expect = expect.max(*end);
    }
    if expect > data_len {
        out.push(bad(
            Severity::Medium,
            "safetensors/offsets",
            format!("the tensors need {expect} bytes of data, the file has {data_len}"),
        ));
    } else if expect < data_len {
        out.push(
            bad(
                Severity::High,
                "safetensors/trailing-data",
                format!(
                    "{} bytes after the last tensor are not described by the header (a polyglot file hides content there)",
                    data_len - expect
                ),
            )
            .at(data_start + expect),
        );
    }
    out
}
