//! Secrets: tokens with a known prefix (Hugging Face, `sk-`, AWS, GitHub, JWT), bearer and basic
//! credentials, URL userinfo, `password=`-style pairs, and PEM private-key blocks, which span
//! lines.

use super::scan::{back_len, is_alnum, is_space, is_word, line_end, run_len};
use super::{Kind, Span};

fn left_ok(buf: &[u8], p: usize) -> bool {
    p == 0 || !is_alnum(buf[p - 1])
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `hf_` / `api_org_` followed by at least 30 letters or digits.
pub fn hf(buf: &[u8], p: usize, plen: usize) -> Option<Span> {
    if p > 0 && is_word(buf[p - 1]) {
        return None;
    }
    let n = run_len(buf, p + plen, is_alnum);
    (n >= 30).then(|| Span::new(p, p + plen + n, Kind::HfToken))
}

/// `sk-` followed by at least 20 of `[A-Za-z0-9_-]`.
pub fn sk(buf: &[u8], p: usize) -> Option<Span> {
    if !left_ok(buf, p) {
        return None;
    }
    let n = run_len(buf, p + 3, b64url);
    (n >= 20).then(|| Span::new(p, p + 3 + n, Kind::ApiKey))
}

/// An AWS access key id: a 4-character prefix and 16 base32 characters.
pub fn aws(buf: &[u8], p: usize) -> Option<Span> {
    if !left_ok(buf, p) {
        return None;
    }
    let n = run_len(buf, p, is_alnum);
    let ok = n == 20
        && buf[p + 4..p + 20]
            .iter()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(b))
        && buf[p + 3].is_ascii_alphanumeric();
    ok.then(|| Span::new(p, p + 20, Kind::AwsKey))
}

/// `gh[pousr]_` and 36 characters, or `github_pat_` and 82.
pub fn github(buf: &[u8], p: usize, pat: bool) -> Option<Span> {
    if !left_ok(buf, p) {
        return None;
    }
    let (plen, n, min) = if pat {
        (11, run_len(buf, p + 11, is_word), 40)
    } else {
        (4, run_len(buf, p + 4, is_alnum), 36)
    };
    (n >= min).then(|| Span::new(p, p + plen + n, Kind::GithubToken))
}

/// `eyJ...` `.` `eyJ...` `.` signature.
pub fn jwt(buf: &[u8], p: usize) -> Option<Span> {
    if !left_ok(buf, p) {
        return None;
    }
    let n1 = run_len(buf, p + 3, b64url);
    let q = p + 3 + n1;
    if n1 < 8 || buf.get(q) != Some(&b'.') || !buf[q + 1..].starts_with(b"eyJ") {
        return None;
    }
    let n2 = run_len(buf, q + 4, b64url);
    let r = q + 4 + n2;
    if n2 < 8 || buf.get(r) != Some(&b'.') {
        return None;
    }
    let n3 = run_len(buf, r + 1, b64url);
    Some(Span::new(p, r + 1 + n3, Kind::Jwt))
}

/// `://user:password@`: the userinfo, up to the last `@` of the authority.
pub fn url_userinfo(buf: &[u8], p: usize) -> Option<Span> {
    let s = p + 3;
    let n = run_len(buf, s, |b| {
        !is_space(b) && !matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>')
    });
    let auth = &buf[s..s + n];
    let at = memchr::memrchr(b'@', auth)?;
    let colon = memchr::memchr(b':', &auth[..at])?;
    (colon > 0 && at > colon + 1).then(|| Span::new(s, s + at, Kind::Credentials))
}

/// `Bearer TOKEN` (`p` at `earer`): the token, when it looks like one.
pub fn bearer(buf: &[u8], p: usize) -> Option<Span> {
    let (s, n) = scheme_value(buf, p, 5, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'-')
    })?;
    let tok = &buf[s..s + n];
    let looks_random = tok
        .iter()
        .any(|b| !b.is_ascii_lowercase() || b.is_ascii_digit())
        && tok[1..]
            .iter()
            .any(|b| b.is_ascii_digit() || !b.is_ascii_alphabetic() || b.is_ascii_uppercase());
    if n < 8 || !looks_random {
        return None;
    }
    let eq = run_len(buf, s + n, |b| b == b'=');
    Some(Span::new(s, s + n + eq, Kind::Credentials))
}

/// `Basic BASE64` (`p` at `asic`): the value, when it decodes to `user:password`.
pub fn basic(buf: &[u8], p: usize) -> Option<Span> {
    let (s, n) = scheme_value(buf, p, 4, |b| {
        b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
    })?;
    let eq = run_len(buf, s + n, |b| b == b'=').min(2);
    if n < 8 || !decodes_to_pair(&buf[s..s + n]) {
        return None;
    }
    Some(Span::new(s, s + n + eq, Kind::Credentials))
}

/// After a `b`/`B` + `earer`/`asic` word: blanks, then a value; returns its start and length.
fn scheme_value(
    buf: &[u8],
    p: usize,
    tail: usize,
    pred: impl Fn(u8) -> bool,
) -> Option<(usize, usize)> {
    if p == 0 || !matches!(buf[p - 1], b'b' | b'B') || (p >= 2 && is_alnum(buf[p - 2])) {
        return None;
    }
    let w = p + tail;
    let ws = run_len(buf, w, |b| b == b' ' || b == b'\t');
    if ws == 0 {
        return None;
    }
    let s = w + ws;
    Some((s, run_len(buf, s, pred)))
}

fn decodes_to_pair(b64: &[u8]) -> bool {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in b64.iter().take(256) {
        acc = (acc << 6) | val(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            let byte = (acc >> bits) & 0xff;
            if byte == u32::from(b':') {
                return true;
            }
        }
    }
    false
}

/// Whether a key name (any case) names a secret; `Some(true)` for passwords, whose values may
/// be short.
fn secret_key(name: &[u8]) -> Option<bool> {
    let mut lower = [0u8; 48];
    let tail = &name[name.len().saturating_sub(48)..];
    let lower = &mut lower[..tail.len()];
    for (d, s) in lower.iter_mut().zip(tail) {
        *d = s.to_ascii_lowercase();
    }
    let lower = &*lower;
    for pw in [
        &b"password"[..],
        b"passwd",
        b"pwd",
        b"secret",
        b"secret_key",
        b"private_key",
    ] {
        if lower.ends_with(pw) {
            return Some(true);
        }
    }
    for tk in [
        &b"token"[..],
        b"apikey",
        b"api_key",
        b"api-key",
        b"access_key",
    ] {
        if lower.ends_with(tk) {
            return Some(false);
        }
    }
    None
}

const PLACEHOLDERS: [&[u8]; 8] = [
    b"none",
    b"null",
    b"nil",
    b"true",
    b"false",
    b"undefined",
    b"redacted",
    b"<redacted>",
];

/// A `key=value` / `"key": "value"` pair whose key names a secret (`p` at the end of the key
/// word, `len` its length): the value.
pub fn key_value(buf: &[u8], p: usize, len: usize) -> Option<Span> {
    let ke = p + len;
    if buf.get(ke).copied().is_some_and(is_word) {
        return None;
    }
    let ks = p - back_len(buf, p, |b| is_word(b) || b == b'-' || b == b'.');
    let password = secret_key(&buf[ks..ke])?;
    let mut j = ke;
    if matches!(buf.get(j), Some(b'"' | b'\'')) {
        j += 1;
    }
    j += run_len(buf, j, |b| b == b' ' || b == b'\t');
    match buf.get(j) {
        Some(b'=') if buf.get(j + 1) != Some(&b'=') => {}
        Some(b':') if buf.get(j + 1) != Some(&b'=') => {}
        _ => return None,
    }
    j += 1;
    j += run_len(buf, j, |b| b == b' ' || b == b'\t');
    let (vs, ve) = match buf.get(j) {
        Some(&q @ (b'"' | b'\'')) => {
            let end = line_end(buf, j + 1);
            let close = memchr::memchr(q, &buf[j + 1..end]).map_or(end, |i| j + 1 + i);
            (j + 1, close)
        }
        _ => {
            let n = run_len(buf, j, |b| {
                !is_space(b) && !matches!(b, b'"' | b'\'' | b',' | b';' | b'&')
            });
            (j, j + n)
        }
    };
    let v = &buf[vs..ve];
    if v.is_empty()
        || PLACEHOLDERS.iter().any(|p| v.eq_ignore_ascii_case(p))
        || v.starts_with(b"[REDACTED")
        || v.iter().all(|&b| b == b'*' || b == b'x' || b == b'X')
        || v.starts_with(b"${")
        || v.starts_with(b"%s")
    {
        return None;
    }
    if password {
        // `PWD=/home/app` is the shell's working directory, not a password.
        if buf[ks..ke].eq_ignore_ascii_case(b"pwd") && v.starts_with(b"/") {
            return None;
        }
    } else if v.len() < 8 || v.iter().any(|b| b"{(<[".contains(b)) || !random_enough(v) {
        return None;
    }
    Some(Span::new(vs, ve, Kind::Secret))
}

/// Shannon entropy of the value's bytes against a floor that grows with its length (a short
/// value cannot reach 3.5 bits per character), so `aaaaaaaa` or `00000000` are not secrets.
fn random_enough(v: &[u8]) -> bool {
    let v = &v[..v.len().min(512)];
    let mut counts = [0u16; 256];
    // The distinct bytes, so the sum below visits only them.
    let mut distinct = [0u8; 256];
    let mut kinds = 0;
    for &b in v {
        if counts[usize::from(b)] == 0 {
            distinct[kinds] = b;
            kinds += 1;
        }
        counts[usize::from(b)] += 1;
    }
    let n = v.len() as f64;
    let h: f64 = distinct[..kinds]
        .iter()
        .map(|&b| {
            let p = f64::from(counts[usize::from(b)]) / n;
            -p * p.log2()
        })
        .sum();
    h >= (n.log2() - 1.0).min(3.5)
}

/// How a private-key block goes on after its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemEnd {
    /// `-----END ...-----` ends at `at`; its line ends at `line_end`.
    Ended { at: usize, line_end: usize },
    /// The line at `line_start` is not part of a key: the block stopped before it.
    Stopped { line_start: usize },
    /// The buffer ended inside the block.
    Open,
}

/// A `-----BEGIN ... PRIVATE KEY-----` header at `p`: the span to redact and whether the block
/// goes on past the buffer.
pub fn pem_begin(buf: &[u8], p: usize) -> Option<(Span, bool)> {
    let le = line_end(buf, p);
    let line = &buf[p..le];
    let hdr_end = memchr::memmem::find(&line[10..], b"-----")? + 10;
    memchr::memmem::find(&line[..hdr_end], b"PRIVATE KEY")?;
    // The whole block on one line (escaped newlines in JSON or a repr).
    if let Some(e) = memchr::memmem::find(&line[hdr_end + 5..], b"-----END") {
        let after = hdr_end + 5 + e + 8;
        let close =
            memchr::memmem::find(&line[after..], b"-----").map_or(line.len(), |i| after + i + 5);
        return Some((Span::new(p, p + close, Kind::PrivateKey), false));
    }
    if le == buf.len() {
        return Some((Span::new(p, le, Kind::PrivateKey), true));
    }
    match pem_continue(buf, le + 1) {
        PemEnd::Ended { at, .. } => Some((Span::new(p, at, Kind::PrivateKey), false)),
        PemEnd::Stopped { line_start } => {
            Some((Span::new(p, line_start - 1, Kind::PrivateKey), false))
        }
        PemEnd::Open => {
            let last_nl = memchr::memrchr(b'\n', &buf[le..]).map_or(buf.len(), |i| le + i);
            let end = if last_nl + 1 == buf.len() {
                last_nl
            } else {
                buf.len()
            };
            Some((Span::new(p, end, Kind::PrivateKey), true))
        }
    }
}

/// Follows the lines of a private-key block from `from` (a line start).
pub fn pem_continue(buf: &[u8], from: usize) -> PemEnd {
    let mut ls = from;
    let mut lines = 0;
    while ls < buf.len() {
        let le = line_end(buf, ls);
        let line = buf[ls..le].trim_ascii_start();
        if line.starts_with(b"-----END") {
            let off = le - line.len();
            let at = memchr::memmem::find(&line[8..], b"-----").map_or(le, |i| off + 8 + i + 5);
            return PemEnd::Ended { at, line_end: le };
        }
        lines += 1;
        if !key_line(line) || lines > 512 {
            return PemEnd::Stopped { line_start: ls };
        }
        ls = le + 1;
    }
    PemEnd::Open
}

/// A line inside a PEM block: base64, blank, or a `Name: value` header.
fn key_line(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    if line
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return true;
    }
    let name = run_len(line, 0, |b| b.is_ascii_alphabetic() || b == b'-');
    name > 0 && line[name..].starts_with(b": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_must_decode_to_a_pair() {
        // "aladdin:opensesame"
        assert!(decodes_to_pair(b"YWxhZGRpbjpvcGVuc2VzYW1l"));
        assert!(!decodes_to_pair(b"authentication"));
    }

    #[test]
    fn secret_key_names() {
        assert_eq!(secret_key(b"HF_TOKEN"), Some(false));
        assert_eq!(secret_key(b"X-Api-Key"), Some(false));
        assert_eq!(secret_key(b"db.password"), Some(true));
        assert_eq!(secret_key(b"aws_secret_access_key"), Some(false));
        assert_eq!(secret_key(b"max_tokens"), None);
        assert_eq!(secret_key(b"monkey"), None);
    }

    #[test]
    fn entropy_floor() {
        assert!(random_enough(b"Zk3q9XbT2LmN"));
        assert!(!random_enough(b"aaaaaaaaaaaa"));
        assert!(!random_enough(b"0000000000000000"));
    }
}
