//! The one pass over every byte: it finds the few places the rules start from.
//!
//! Vectors (AVX2 when the CPU has it, else 128-bit) sort the bytes of each 64-byte block into
//! bit masks: digits, `@?%`, `:=`, the last letters of the keys the rules look at, quotes and
//! blanks, word characters `[A-Za-z0-9_-]`, `_`/`-`, `A`/`J` and `b`. Shifts across the
//! neighbouring blocks then keep only real candidates:
//! - a `dddd` group followed, after at most one byte, by another (IDs, phones, cards);
//! - `@`, `?`, `%` (emails, URL credentials, query strings);
//! - `:`/`=` right after a key such as `token=`, `"content": ` or `prompt: '`;
//! - token prefixes: `_`/`-` followed by 16 word characters (`hf_`, `sk-`, `ghp_`), `A`
//!   starting 16 (`AKIA`), `J` followed by 8 (`eyJ`), `b` with a blank 5 or 6 bytes on (`basic`, `bearer`), and
//!   runs of five dashes (`-----BEGIN`).
//!
//! Only blocks holding a candidate are reported; a clean block costs its classification.

use crate::sys::simd::{self, Kernel, Lanes};

/// The candidates in one 64-byte block (bit `i` is byte `base + i`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub base: usize,
    /// Starts of a `dddd` group followed, after at most one byte, by another `dddd`: every ID,
    /// phone and card number has one; dates, times, ports and sizes do not.
    pub digits: u64,
    /// `@`, `?`, `%`.
    pub special: u64,
    /// Separators right after a key ending in `n t d y s` (any case), maybe closed by a quote
    /// and followed by a blank (`key=`, `"key":`, `'key' :`).
    pub keys: u64,
    /// Bytes where a token may start or be recognised (see the module docs).
    pub marks: u64,
}

/// Class masks of one 64-byte block.
#[derive(Debug, Default, Clone, Copy)]
struct Raw {
    digit: u64,
    special: u64,
    sep: u64,
    /// `n t d y s`, any case: the last letters of `token`, `secret`, `password`, `pwd`,
    /// `api_key`, `prompt`, `text`, `input`, `messages`, `content`, ...
    tail: u64,
    /// `"`, `'`, space, tab.
    blank: u64,
    /// `[A-Za-z0-9_-]`.
    word: u64,
    /// `_`, `-`.
    join: u64,
    /// `A`.
    a: u64,
    /// `J`.
    j: u64,
    /// `b`, `B`.
    b: u64,
}

/// Nibble tables for [`Lanes::lookup`]: a class is the bytes whose high nibble is in one set
/// and low nibble in another, so some classes are wider than their names (a superset only lets
/// a few more candidates through, which the checks then turn down).
mod nibbles {
    /// `0-9`.
    pub const DIGIT: u8 = 0;
    /// `:` `=`.
    pub const SEP: u8 = 1;
    /// `n t d y s` (and `c i ^ ~`), any case.
    pub const TAIL: u8 = 2;
    /// Space, tab, `"`, `'` (and `)`, some control bytes).
    pub const BLANK: u8 = 3;
    /// `_`.
    pub const UNDERSCORE: u8 = 4;
    /// `-`.
    pub const DASH: u8 = 5;
    /// `A`.
    pub const CAP: u8 = 6;
    /// `0x30..=0x7f`: digits, letters and some punctuation.
    pub const WORDISH: u8 = 7;

    const CLASSES: [(u8, &[u8], &[u8]); 8] = [
        (DIGIT, &[3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (SEP, &[3], &[0xa, 0xd]),
        (TAIL, &[4, 5, 6, 7], &[3, 4, 9, 0xe]),
        (BLANK, &[0, 2], &[0, 2, 7, 9]),
        (UNDERSCORE, &[5], &[0xf]),
        (DASH, &[2], &[0xd]),
        (CAP, &[4], &[1]),
        (
            WORDISH,
            &[3, 4, 5, 6, 7],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        ),
    ];

    const fn table(high: bool) -> [u8; 16] {
        let mut t = [0u8; 16];
        let mut c = 0;
        while c < CLASSES.len() {
            let (bit, his, los) = CLASSES[c];
            let set = if high { his } else { los };
            let mut i = 0;
            while i < set.len() {
                t[set[i] as usize] |= 1 << bit;
                i += 1;
            }
            c += 1;
        }
        t
    }

    pub const LO: [u8; 16] = table(false);
    pub const HI: [u8; 16] = table(true);
}

#[inline(always)]
fn classify<V: Lanes>(block: &[u8]) -> Raw {
    if V::FAST_LOOKUP {
        return classify_by_nibbles::<V>(block);
    }
    let mut r = Raw::default();
    let mut i = 0;
    while i < 64 {
        let v = V::load(&block[i..]);
        let lower = v.or(V::splat(0x20));
        let digit = v.in_range(b'0', 10);
        let join = v.eq(b'_').or(v.eq(b'-'));
        r.digit |= digit.bits() << i;
        r.special |= v.eq(b'@').or(v.eq(b'?')).or(v.eq(b'%')).bits() << i;
        r.sep |= v.eq(b':').or(v.eq(b'=')).bits() << i;
        r.tail |= lower
            .eq(b'n')
            .or(lower.eq(b't'))
            .or(lower.eq(b'd'))
            .or(lower.eq(b'y'))
            .or(lower.eq(b's'))
            .bits()
            << i;
        r.blank |= v
            .eq(b' ')
            .or(v.eq(b'"'))
            .or(v.eq(b'\''))
            .or(v.eq(b'\t'))
            .bits()
            << i;
        r.word |= lower.in_range(b'a', 26).or(digit).or(join).bits() << i;
        r.join |= join.bits() << i;
        r.a |= v.eq(b'A').bits() << i;
        r.j |= v.eq(b'J').bits() << i;
        r.b |= lower.eq(b'b').bits() << i;
        i += V::WIDTH;
    }
    r
}

/// [`classify`] with one table lookup per vector (the classes may be wider, see [`nibbles`]).
#[inline(always)]
fn classify_by_nibbles<V: Lanes>(block: &[u8]) -> Raw {
    use nibbles::{BLANK, CAP, DASH, DIGIT, HI, LO, SEP, TAIL, UNDERSCORE, WORDISH};
    let mut r = Raw::default();
    let mut i = 0;
    while i < 64 {
        let v = V::load(&block[i..]);
        let c = v.lookup(&LO, &HI);
        r.digit |= c.bit(DIGIT.into()) << i;
        r.sep |= c.bit(SEP.into()) << i;
        r.tail |= c.bit(TAIL.into()) << i;
        r.blank |= c.bit(BLANK.into()) << i;
        r.join |= c.any(1 << UNDERSCORE | 1 << DASH) << i;
        r.a |= c.bit(CAP.into()) << i;
        r.j |= v.eq(b'J').bits() << i;
        r.b |= v.or(V::splat(0x20)).eq(b'b').bits() << i;
        r.word |= c.any(1 << WORDISH | 1 << UNDERSCORE | 1 << DASH) << i;
        r.special |= v.eq(b'@').or(v.eq(b'?')).or(v.eq(b'%')).bits() << i;
        i += V::WIDTH;
    }
    r
}

/// The candidates of block `cur`, from its class masks and its neighbours'.
#[inline(always)]
fn derive(prev: &Raw, cur: &Raw, next: &Raw) -> Block {
    // Looking ahead: the block and the next one as one 128-bit mask.
    let ahead = |a: u64, b: u64| u128::from(a) | (u128::from(b) << 64);
    // Looking back `n` bytes: bit `i` is byte `i - n`.
    let back = |a: u64, p: u64, n: u32| (a << n) | (p >> (64 - n));

    let d = ahead(cur.digit, next.digit);
    let r4 = d & (d >> 1) & (d >> 2) & (d >> 3);
    let digits = (r4 & ((r4 >> 4) | (r4 >> 5))) as u64;

    let (t1, t2, t3) = (
        back(cur.tail, prev.tail, 1),
        back(cur.tail, prev.tail, 2),
        back(cur.tail, prev.tail, 3),
    );
    let (z1, z2) = (
        back(cur.blank, prev.blank, 1),
        back(cur.blank, prev.blank, 2),
    );
    let keys = cur.sep & (t1 | (z1 & t2) | (z1 & z2 & t3));

    let w = ahead(cur.word, next.word);
    let l2 = w & (w >> 1);
    let l4 = l2 & (l2 >> 2);
    let l8 = l4 & (l4 >> 4);
    let l16 = l8 & (l8 >> 8);
    let j = ahead(cur.join, next.join);
    let dashes5 = j & (j >> 1) & (j >> 2) & (j >> 3) & (j >> 4);
    let z = ahead(cur.blank, next.blank);
    let marks = (cur.join & (l16 >> 1) as u64)
        | dashes5 as u64
        | (cur.a & l16 as u64)
        | (cur.j & (l8 >> 1) as u64)
        | (cur.b & ((z >> 5) | (z >> 6)) as u64);

    Block {
        base: 0,
        digits,
        special: cur.special,
        keys,
        marks,
    }
}

/// The class masks of block `k` of `hay` (zero past its end).
#[inline(always)]
fn raw<V: Lanes>(hay: &[u8], k: usize) -> Raw {
    let at = k * 64;
    if at + 64 <= hay.len() {
        classify::<V>(&hay[at..at + 64])
    } else if at < hay.len() {
        let mut tail = [0u8; 64];
        tail[..hay.len() - at].copy_from_slice(&hay[at..]);
        classify::<V>(&tail)
    } else {
        Raw::default()
    }
}

struct Scan<'a, F> {
    hay: &'a [u8],
    base: usize,
    f: F,
}

/// Blocks handed over at a time: the handler runs outside the classification loop.
const BATCH: usize = 32;

impl<F: FnMut(&[Block])> Kernel for Scan<'_, F> {
    type Output = ();

    #[inline(always)]
    fn run<V: Lanes>(self) {
        let Scan { hay, base, mut f } = self;
        let n = hay.len().div_ceil(64);
        let mut found = [Block::default(); BATCH];
        let mut len = 0;
        let mut prev = Raw::default();
        let mut cur = raw::<V>(hay, 0);
        for k in 0..n {
            let next = raw::<V>(hay, k + 1);
            let mut b = derive(&prev, &cur, &next);
            if b.digits | b.special | b.keys | b.marks != 0 {
                b.base = base + k * 64;
                found[len] = b;
                len += 1;
                if len == BATCH {
                    f(&found);
                    len = 0;
                }
            }
            prev = cur;
            cur = next;
        }
        if len > 0 {
            f(&found[..len]);
        }
    }
}

/// Calls `f` with the blocks of `hay` (which starts at `base` in the caller's buffer) that
/// hold candidates, in order, a few at a time.
pub fn candidates(hay: &[u8], base: usize, f: impl FnMut(&[Block])) {
    candidates_with(hay, base, f, false);
}

/// [`candidates`], optionally forcing the portable 128-bit vectors.
pub fn candidates_with(hay: &[u8], base: usize, f: impl FnMut(&[Block]), portable: bool) {
    simd::dispatch(Scan { hay, base, f }, portable);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The candidates by the exact (portable) classes; the widest vectors this CPU has may
    /// find more (their classes can be wider), never fewer.
    fn blocks(text: &[u8]) -> Vec<Block> {
        let mut wide = Vec::new();
        let mut exact = Vec::new();
        candidates_with(text, 0, |b| wide.extend_from_slice(b), false);
        candidates_with(text, 0, |b| exact.extend_from_slice(b), true);
        for e in &exact {
            let w = wide
                .iter()
                .find(|w| w.base == e.base)
                .copied()
                .unwrap_or_default();
            for (we, ee) in [
                (w.digits, e.digits),
                (w.special, e.special),
                (w.keys, e.keys),
                (w.marks, e.marks),
            ] {
                assert_eq!(we & ee, ee, "block {}: {w:?} misses some of {e:?}", e.base);
            }
        }
        exact
    }

    fn pos(mask: u64) -> Vec<usize> {
        (0..64).filter(|i| mask >> i & 1 == 1).collect()
    }

    #[test]
    fn finds_the_candidates() {
        let text = "id 1380013800 tel 2025-05-12 a@b ?q token=x \"text\": hf_abcdefghijklmnopq";
        let at = |s: &str| text.find(s).unwrap();
        let b = blocks(text.as_bytes());
        assert_eq!(b.len(), 1);
        assert_eq!(pos(b[0].digits), [3, 4, 5]);
        assert_eq!(pos(b[0].special), [at("@"), at("?")]);
        assert_eq!(pos(b[0].keys), [at("="), at(": ")]);
        assert_eq!(pos(b[0].marks), [at("_")]);
        // A clean block is not reported; the tail block is.
        let mut text = vec![b'x'; 200];
        text.extend_from_slice(b" user@host");
        let b = blocks(&text);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].base, 192);
        assert_eq!(pos(b[0].special), [13]);
    }

    #[test]
    fn token_marks() {
        for (text, at) in [
            (&b"..sk-proj-0123456789abcdef.."[..], 4),
            (b"..AKIAABCDEFGHIJKLMNOP", 2),
            (b"..eyJhbGciOiJIUzI1", 4),
            (b"Authorization: Bearer x", 15),
            (b"auth basic\tx", 5),
            (b"-----BEGIN RSA", 0),
        ] {
            let b = blocks(text);
            assert!(
                b.first().is_some_and(|b| b.marks >> at & 1 == 1),
                "{}: {:?}",
                String::from_utf8_lossy(text),
                b.first().map(|b| pos(b.marks))
            );
        }
        assert!(blocks(b"pipeline_utils.py - info Avg basics").is_empty());
    }

    #[test]
    fn across_block_edges() {
        // Candidates that need bytes from the next or previous block, at every alignment.
        for pad in 0..70 {
            let mut text = vec![b'x'; pad];
            text.extend_from_slice(b" 13800138000 token=abc hf_abcdefghijklmnopqrstu");
            let b = blocks(&text);
            let found = |m: fn(&Block) -> u64| -> Vec<usize> {
                b.iter()
                    .flat_map(|b| pos(m(b)).into_iter().map(|i| b.base + i))
                    .collect()
            };
            assert_eq!(
                found(|b| b.digits),
                (pad + 1..pad + 5).collect::<Vec<_>>(),
                "{pad}"
            );
            assert_eq!(found(|b| b.keys), [pad + 18], "{pad}");
            assert_eq!(found(|b| b.marks), [pad + 25], "{pad}");
        }
    }
}
