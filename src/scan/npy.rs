//! NumPy `.npy`: the header is checked; an object dtype means the payload is a pickle, which
//! the caller scans with numpy's allowlist.

/// What an `.npy` header says.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// Where the array data starts.
    pub data: usize,
    /// The dtype holds Python objects: the data is a pickle.
    pub object: bool,
    /// Bytes the array data takes, when the dtype is simple enough to know.
    pub nbytes: Option<u64>,
}

/// Parses the header. `Err` says what is wrong with it.
pub fn header(d: &[u8]) -> Result<Header, String> {
    if !d.starts_with(b"\x93NUMPY") || d.len() < 10 {
        return Err("no .npy magic".into());
    }
    let (major, minor) = (d[6], d[7]);
    let (len, start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([d[8], d[9]])), 10),
        2 | 3 => {
            let b = d.get(8..12).ok_or("truncated header length")?;
            (u32::from_le_bytes(b.try_into().expect("4")) as usize, 12)
        }
        _ => return Err(format!("unknown format version {major}.{minor}")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= d.len())
        .ok_or("the header runs past the end of the file")?;
    let text = &d[start..end];
    let text = if major == 3 {
        std::str::from_utf8(text).map_err(|_| "the header is not UTF-8")?
    } else {
        if !text.is_ascii() {
            return Err("the header is not ASCII".into());
        }
        std::str::from_utf8(text).expect("ascii")
    };
    let t = text.trim_end_matches(['\n', ' ', '\0']).trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return Err("the header is not a dict literal".into());
    }
    let descr = dict_value(t, "descr").ok_or("the header has no 'descr'")?;
    let fortran = dict_value(t, "fortran_order").ok_or("the header has no 'fortran_order'")?;
    let shape = dict_value(t, "shape").ok_or("the header has no 'shape'")?;
    let keys = t.matches("':").count() + t.matches("\":").count();
    if keys != 3 {
        return Err("the header must hold exactly descr, fortran_order and shape".into());
    }
    if fortran != "False" && fortran != "True" {
        return Err("fortran_order is not a bool".into());
    }
    let dims: Option<Vec<u64>> = shape
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect();
    let dims = dims.ok_or("shape is not a tuple of integers")?;
    // Object dtype anywhere in the descr ('|O', '<O8', or a field of a structured dtype).
    let object = descr_has_object(descr);
    let nbytes = simple_itemsize(descr).and_then(|size| {
        dims.iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(size))
    });
    Ok(Header {
        data: end,
        object,
        nbytes,
    })
}

/// The text of `key`'s value in a Python dict literal (up to the matching comma at depth 0).
fn dict_value<'a>(t: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}':");
    let pat2 = format!("\"{key}\":");
    let at = t
        .find(&pat1)
        .map(|i| i + pat1.len())
        .or_else(|| t.find(&pat2).map(|i| i + pat2.len()))?;
    let rest = &t[at..];
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') if depth > 0 => depth -= 1,
            (None, ',' | '}') if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

fn descr_has_object(descr: &str) -> bool {
    // Type strings inside quotes: object is kind 'O'.
    let mut in_q = None;
    let mut cur = String::new();
    for c in descr.chars() {
        match in_q {
            Some(q) if c == q => {
                let s = cur.trim_start_matches(['<', '>', '|', '=']);
                if s.starts_with('O') && s[1..].chars().all(|d| d.is_ascii_digit()) {
                    return true;
                }
                cur.clear();
                in_q = None;
            }
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => in_q = Some(c),
            None => {}
        }
    }
    false
}

/// The item size of a plain type string like '<f4' or '|b1'.
fn simple_itemsize(descr: &str) -> Option<u64> {
    let s = descr.strip_prefix('\'')?.strip_suffix('\'')?;
    let s = s.trim_start_matches(['<', '>', '|', '=']);
    let kind = s.chars().next()?;
    if !"biufcV".contains(kind) {
        return None;
    }
    s[1..].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(h: &str) -> Vec<u8> {
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v
    }

    #[test]
    fn headers() {
        let h = header(&npy(
            "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }\n",
        ))
        .unwrap();
        assert!(h.object);
        let h = header(&npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
        ))
        .unwrap();
        assert!(!h.object);
        assert_eq!(h.nbytes, Some(24));
        let h = header(&npy(
            "{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (2,), }\n",
        ))
        .unwrap();
        assert!(h.object);
        assert!(header(&npy("{'descr': '<f4', 'shape': (2,), }\n")).is_err());
    }
}
