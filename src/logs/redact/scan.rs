//! Byte-level helpers and the digit-run scanner: classifies eight bytes at a time (SWAR) and
//! reports only runs of digits long enough to be an ID, a phone or a card number.

/// Digits joined by single spaces or dashes, with at least this many digits, are candidates.
pub const MIN_DIGITS: usize = 11;

#[inline]
pub fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

#[inline]
pub fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `[A-Za-z0-9_]`.
#[inline]
pub fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[inline]
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// How many bytes from `from` satisfy `pred`.
#[inline]
pub fn run_len(buf: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    buf.get(from..)
        .map_or(0, |s| s.iter().take_while(|&&b| pred(b)).count())
}

/// How many bytes just before `to` satisfy `pred`.
#[inline]
pub fn back_len(buf: &[u8], to: usize, pred: impl Fn(u8) -> bool) -> usize {
    buf[..to].iter().rev().take_while(|&&b| pred(b)).count()
}

/// The first `needle` (not empty) in `hay`. For the short needles and haystacks of one log
/// line, where building a `memmem` searcher costs more than the search.
#[inline]
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    memchr::memchr_iter(first, hay).find(|&i| hay[i + 1..].starts_with(rest))
}

/// The last `needle` (not empty) in `hay`; see [`find`].
#[inline]
pub fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    memchr::memrchr_iter(first, hay).find(|&i| hay[i + 1..].starts_with(rest))
}

/// Every `needle` (not empty) in `hay`, overlapping ones included; see [`find`].
#[inline]
pub fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let (first, rest) = needle.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
    memchr::memchr_iter(first, hay)
        .filter(move |&i| !needle.is_empty() && hay[i + 1..].starts_with(rest))
}

/// The end of the line holding `pos` (the index of its `\n`, or the buffer's end).
#[inline]
pub fn line_end(buf: &[u8], pos: usize) -> usize {
    memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |i| pos + i)
}

/// Turns the digit cores of a buffer, in order, into the digit runs worth checking: maximal
/// runs of digits joined by single separators (space or `-`) holding at least [`MIN_DIGITS`]
/// digits, each once however many cores it has.
#[derive(Debug, Default)]
pub struct DigitRuns {
    /// The end of the last run: cores before it belong to it.
    seen: usize,
}

impl DigitRuns {
    /// The run around the core at `pos` (see [`Block::digits`](super::classify::Block::digits)),
    /// unless it was returned already or is too short.
    #[inline]
    pub fn at(&mut self, buf: &[u8], pos: usize) -> Option<(usize, usize)> {
        if pos < self.seen {
            return None;
        }
        let (s, e, digits) = expand(buf, pos);
        self.seen = e;
        (digits >= MIN_DIGITS).then_some((s, e))
    }
}

/// Calls `f(start, end)` for every digit run of `buf` worth checking (see [`DigitRuns`]).
pub fn digit_spans(buf: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut runs = DigitRuns::default();
    super::classify::candidates(buf, 0, |blocks| {
        for b in blocks {
            let mut core = b.digits;
            while core != 0 {
                let pos = b.base + core.trailing_zeros() as usize;
                core &= core - 1;
                if let Some((s, e)) = runs.at(buf, pos) {
                    f(s, e);
                }
            }
        }
    });
}

#[inline]
fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'-'
}

/// The maximal digit run around `pos` (a digit) and its digit count. A leading `%XX` escape's
/// digits are not part of it.
fn expand(buf: &[u8], pos: usize) -> (usize, usize, usize) {
    let mut s = pos;
    loop {
        if s > 0 && is_digit(buf[s - 1]) {
            s -= 1;
        } else if s > 1 && is_sep(buf[s - 1]) && is_digit(buf[s - 2]) {
            s -= 2;
        } else {
            break;
        }
    }
    let mut e = pos;
    let n = buf.len();
    loop {
        if e < n && is_digit(buf[e]) {
            e += 1;
        } else if e + 1 < n && is_sep(buf[e]) && is_digit(buf[e + 1]) {
            e += 2;
        } else {
            break;
        }
    }
    if s > 0 && buf[s - 1] == b'%' && s + 2 <= e {
        s += 2;
        while s < e && !is_digit(buf[s]) {
            s += 1;
        }
    }
    let digits = buf[s..e].iter().filter(|b| is_digit(**b)).count();
    (s, e, digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        digit_spans(s.as_bytes(), |a, b| v.push(&s[a..b]));
        v
    }

    #[test]
    fn short_searches() {
        let hay = b"a - b - c://d";
        assert_eq!(find(hay, b" - "), Some(1));
        assert_eq!(rfind(hay, b" - "), Some(5));
        assert_eq!(find(hay, b"://"), Some(9));
        assert_eq!(find(hay, b"x"), None);
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find_all(hay, b" - ").collect::<Vec<_>>(), [1, 5]);
        assert_eq!(find_all(b"aaa", b"aa").collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn finds_long_digit_runs_only() {
        assert!(spans("2025-05-12 11:43:00,123 port 54321 size 1234567 id 12345678").is_empty());
        assert_eq!(spans("call 13800138000 now"), ["13800138000"]);
        assert_eq!(spans("tel:138-0013-8000."), ["138-0013-8000"]);
        assert_eq!(
            spans("card 4111 1111 1111 1111 and 6222021234567890123"),
            ["4111 1111 1111 1111", "6222021234567890123"]
        );
        assert_eq!(spans("身份证号11010519491231002X"), ["11010519491231002"]);
        assert_eq!(spans("q=a%2013800138000"), ["13800138000"]);
        // At every alignment, including the very end of the buffer.
        for pad in 0..17 {
            let s = format!("{}13800138000", "x".repeat(pad));
            assert_eq!(spans(&s), ["13800138000"], "{pad}");
        }
    }
}
