//! Personal data: China resident IDs (ISO 7064 MOD 11-2), China mobile numbers, bank cards
//! (Luhn), emails (`@` and `%40`), and IP addresses. Boundaries are ASCII and checked here, so
//! CJK text right next to a number does not hide it.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::scan::{back_len, is_alnum, is_digit, run_len};
use super::{Kind, Span};

/// ISO 7064 MOD 11-2 check of an 18-character ID, plus a plausible birth date.
pub fn cn_id_valid(id: &[u8]) -> bool {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    if id.len() != 18 || !id[..17].iter().all(|b| is_digit(*b)) || id[0] == b'0' {
        return false;
    }
    let d = |i: usize| u32::from(id[i] - b'0');
    let year = d(6) * 1000 + d(7) * 100 + d(8) * 10 + d(9);
    let month = d(10) * 10 + d(11);
    let day = d(12) * 10 + d(13);
    if !(1800..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let sum: u32 = (0..17).map(|i| d(i) * W[i]).sum();
    CHECK[(sum % 11) as usize] == id[17].to_ascii_uppercase()
}

/// The Luhn check over the digits.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.iter().rev().enumerate() {
        let mut v = u32::from(b - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Finds IDs, phones and cards in a run of digits `[s, e)` joined by single separators.
pub fn digits(buf: &[u8], s: usize, e: usize, spans: &mut Vec<Span>) {
    // Groups: maximal runs of digits inside the span.
    let mut groups: [(usize, usize); 24] = [(0, 0); 24];
    let mut ng = 0;
    let mut i = s;
    while i < e && ng < groups.len() {
        let n = run_len(&buf[..e], i, is_digit);
        groups[ng] = (i, i + n);
        ng += 1;
        i += n + 1;
    }
    let groups = &groups[..ng];
    let mut g = 0;
    while g < groups.len() {
        let (gs, ge) = groups[g];
        // China resident ID: 17 digits and a check character that may be X.
        let id_end = if ge - gs == 17 && matches!(buf.get(ge), Some(b'X' | b'x')) {
            ge + 1
        } else {
            ge
        };
        if id_end - gs == 18
            && !buf.get(id_end).copied().is_some_and(is_alnum)
            && cn_id_valid(&buf[gs..id_end])
        {
            spans.push(Span::new(gs, id_end, Kind::CnId));
            g += 1;
            continue;
        }
        if let Some((start, ng)) = mobile(buf, groups, g) {
            spans.push(Span::new(start, groups[g + ng - 1].1, Kind::Phone));
            g += ng;
            continue;
        }
        if let Some(ng) = card(buf, groups, g) {
            spans.push(Span::new(gs, groups[g + ng - 1].1, Kind::Card));
            g += ng;
            continue;
        }
        g += 1;
    }
}

/// A China mobile number starting at group `g`: `1[3-9]d dddd dddd` as one, two or three groups,
/// with an optional `+86`/`0086`/`86` prefix. Returns its start and how many groups it spans.
fn mobile(buf: &[u8], groups: &[(usize, usize)], g: usize) -> Option<(usize, usize)> {
    let (gs, ge) = groups[g];
    let len = ge - gs;
    let body_ok = |b: &[u8]| b.len() >= 2 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    // Prefix glued to the number.
    for prefix in [&b"0086"[..], b"86"] {
        if len == prefix.len() + 11
            && buf[gs..].starts_with(prefix)
            && (prefix.len() == 4 || buf[..gs].ends_with(b"+"))
            && body_ok(&buf[gs + prefix.len()..ge])
        {
            return Some((start_with_plus(buf, gs), 1));
        }
    }
    // Prefix as its own group: `+86 138...`, `0086-138...`.
    if (len == 2 && &buf[gs..ge] == b"86" && buf[..gs].ends_with(b"+"))
        || (len == 4 && &buf[gs..ge] == b"0086")
    {
        if let Some((_, n)) = mobile_body(buf, groups, g + 1) {
            return Some((start_with_plus(buf, gs), n + 1));
        }
        return None;
    }
    mobile_body(buf, groups, g)
}

fn start_with_plus(buf: &[u8], gs: usize) -> usize {
    if buf[..gs].ends_with(b"+") {
        gs - 1
    } else {
        gs
    }
}

fn mobile_body(buf: &[u8], groups: &[(usize, usize)], g: usize) -> Option<(usize, usize)> {
    let (gs, _) = *groups.get(g)?;
    let first = &buf[gs..];
    if first.len() < 2 || first[0] != b'1' || !(b'3'..=b'9').contains(&first[1]) {
        return None;
    }
    let len_at = |k: usize| groups.get(g + k).map(|(a, b)| b - a);
    let n = match (len_at(0), len_at(1), len_at(2)) {
        (Some(11), _, _) => 1,
        (Some(3), Some(8), _) | (Some(7), Some(4), _) => 2,
        (Some(3), Some(4), Some(4)) => 3,
        _ => return None,
    };
    Some((gs, n))
}

/// A bank card starting at group `g`: 13 to 19 digits over consecutive groups, an issuer digit
/// 2-6, and a valid Luhn sum; the longest such run wins.
fn card(buf: &[u8], groups: &[(usize, usize)], g: usize) -> Option<usize> {
    if !(b'2'..=b'6').contains(&buf[groups[g].0]) {
        return None;
    }
    let mut digits = [0u8; 19];
    let mut nd = 0;
    let mut best = None;
    for (k, (a, b)) in groups[g..].iter().enumerate() {
        if nd + (b - a) > 19 {
            break;
        }
        digits[nd..nd + (b - a)].copy_from_slice(&buf[*a..*b]);
        nd += b - a;
        if nd >= 13 && luhn(&digits[..nd]) {
            best = Some(k + 1);
        }
    }
    best
}

/// An email address around the `@` (or `%40`) at `p`, `len` bytes long.
pub fn email(buf: &[u8], p: usize, len: usize) -> Option<Span> {
    let local = back_len(buf, p, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
    });
    if local == 0 {
        return None;
    }
    let s = p - local;
    // `scheme://user:password@host`: userinfo, not an address (the secrets rules handle it).
    if s > 0 && buf[s - 1] == b':' {
        let tok = back_len(buf, s - 1, |b| !super::scan::is_space(b));
        if super::scan::find(&buf[s - 1 - tok..s - 1], b"://").is_some() {
            return None;
        }
    }
    let mut i = p + len;
    let mut best = None;
    let mut label = 0;
    loop {
        let n = run_len(buf, i, |b| b.is_ascii_alphanumeric() || b == b'-');
        if n == 0 {
            break;
        }
        if label > 0 {
            let alpha = run_len(buf, i, |b| b.is_ascii_alphabetic());
            if alpha >= 2 {
                best = Some(i + alpha);
            }
        }
        i += n;
        label += 1;
        if buf.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    best.map(|end| Span::new(p - local, end, Kind::Email))
}

/// IP addresses in the token of address characters around `p` (a `.` or `:`); returns the end
/// of the token so the caller skips it.
pub fn ip(buf: &[u8], p: usize, spans: &mut Vec<Span>) -> usize {
    let is_ip = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let s = p - back_len(buf, p, is_ip);
    let e = p + run_len(buf, p, is_ip);
    let tok = &buf[s..e];
    let colons = tok.iter().filter(|&&b| b == b':').count();
    if colons >= 2 {
        let t = trim(tok, b".");
        if t.iter().filter(|b| b.is_ascii_hexdigit()).count() >= 2
            && let Ok(a) = std::str::from_utf8(t).unwrap_or("").parse::<Ipv6Addr>()
        {
            if !(a.is_loopback() || a.is_unspecified()) {
                spans.push(Span::new(s, s + t.len(), Kind::Ip));
            }
            return e;
        }
    }
    // IPv4 pieces between colons (`10.0.0.5:8000`), strict octets, no `.digit` beyond them.
    let mut at = s;
    for piece in tok.split(|&b| b == b':') {
        let t = trim(piece, b".");
        let lead = piece.len() - piece.trim_ascii_start().len();
        if t.iter().filter(|&&b| b == b'.').count() == 3
            && t.iter().all(|b| is_digit(*b) || *b == b'.')
            && !piece.starts_with(b".")
            && let Some(a) = strict_v4(t)
            && !(a.is_loopback() || a.is_unspecified())
        {
            spans.push(Span::new(at + lead, at + lead + t.len(), Kind::Ip));
        }
        at += piece.len() + 1;
    }
    e
}

fn trim<'a>(t: &'a [u8], chars: &[u8]) -> &'a [u8] {
    let mut t = t;
    while let [rest @ .., last] = t {
        if chars.contains(last) {
            t = rest;
        } else {
            break;
        }
    }
    t
}

fn strict_v4(t: &[u8]) -> Option<Ipv4Addr> {
    let mut o = [0u8; 4];
    let mut n = 0;
    for part in t.split(|&b| b == b'.') {
        if n == 4 || part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let v: u32 = part.iter().fold(0, |a, b| a * 10 + u32::from(b - b'0'));
        o[n] = u8::try_from(v).ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_checksums() {
        assert!(cn_id_valid(b"11010519491231002X"));
        assert!(cn_id_valid(b"440524188001010014"));
        assert!(!cn_id_valid(b"440524188001010015"));
        assert!(!cn_id_valid(b"110105194913310021"));
    }

    #[test]
    fn luhn_sums() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
    }
}
