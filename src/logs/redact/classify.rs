//! One pass over the text, 64 bytes at a time with 128-bit vectors, that marks the bytes the
//! rules start from: digits, `@` `?` `%`, key/value separators (`:` `=`), word characters and
//! quotes (what may end a key), and blanks. Everything else is found from these bit masks.

use wide::u8x16;

/// Bit masks of a buffer, one `u64` per 64 bytes (bit `i` of word `k` is byte `64k + i`).
#[derive(Debug, Default)]
pub struct Masks {
    pub digit: Vec<u64>,
    /// `@`, `?`, `%`.
    pub special: Vec<u64>,
    /// `:`, `=`.
    pub sep: Vec<u64>,
    /// The last letters of the keys the rules look at (`token`, `secret`, `password`, `pwd`,
    /// `api_key`, `prompt`, `text`, `input`, `messages`, ...): `n t d y s`, any case.
    pub tail: Vec<u64>,
    /// `"`, `'`.
    pub quote: Vec<u64>,
    /// A space.
    pub space: Vec<u64>,
}

#[inline]
fn vec16(b: &[u8]) -> u8x16 {
    let a: [u8; 16] = b.try_into().unwrap_or([0; 16]);
    u8x16::new(a)
}

#[inline]
fn eq(v: u8x16, c: u8) -> u8x16 {
    v.simd_eq(u8x16::splat(c))
}

/// `lo <= b < lo + n` (unsigned): `b - lo` wraps above `n - 1` otherwise.
#[inline]
fn in_range(v: u8x16, lo: u8, n: u8) -> u8x16 {
    let d = v - u8x16::splat(lo);
    d.min(u8x16::splat(n - 1)).simd_eq(d)
}

#[inline]
fn bits(m: u8x16) -> u64 {
    u64::from(m.to_bitmask() as u16)
}

impl Masks {
    /// Classifies `buf`; the masks have one extra zero word at the end.
    pub fn classify(&mut self, buf: &[u8]) {
        let words = buf.len().div_ceil(64) + 1;
        for v in [
            &mut self.digit,
            &mut self.special,
            &mut self.sep,
            &mut self.tail,
            &mut self.quote,
            &mut self.space,
        ] {
            v.clear();
            v.resize(words, 0);
        }
        let mut tail = [0u8; 64];
        for (k, block) in buf.chunks(64).enumerate() {
            let block: &[u8] = if block.len() == 64 {
                block
            } else {
                tail[..block.len()].copy_from_slice(block);
                tail[block.len()..].fill(0);
                &tail
            };
            let (mut d, mut s, mut p, mut t, mut qu, mut sp) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
            for q in 0..4 {
                let v = vec16(&block[q * 16..q * 16 + 16]);
                let digit = in_range(v, b'0', 10);
                let lower = v | u8x16::splat(0x20);
                let shift = q * 16;
                d |= bits(digit) << shift;
                s |= bits(eq(v, b'@') | eq(v, b'?') | eq(v, b'%')) << shift;
                p |= bits(eq(v, b':') | eq(v, b'=')) << shift;
                t |= bits(
                    eq(lower, b'n')
                        | eq(lower, b't')
                        | eq(lower, b'd')
                        | eq(lower, b'y')
                        | eq(lower, b's'),
                ) << shift;
                qu |= bits(eq(v, b'"') | eq(v, b'\'')) << shift;
                sp |= bits(eq(v, b' ')) << shift;
            }
            self.digit[k] = d;
            self.special[k] = s;
            self.sep[k] = p;
            self.tail[k] = t;
            self.quote[k] = qu;
            self.space[k] = sp;
        }
    }
}

impl Masks {
    /// Starts (in word `k`) of a `dddd` group followed, after at most one byte, by another
    /// `dddd`: every ID, phone and card number has one; dates, times, ports and sizes do not.
    #[inline]
    pub fn digit_cores(&self, k: usize) -> u64 {
        let d = u128::from(self.digit[k]) | u128::from(self.digit[k + 1]) << 64;
        let r4 = d & (d >> 1) & (d >> 2) & (d >> 3);
        (r4 & ((r4 >> 4) | (r4 >> 5))) as u64
    }

    /// Separators (word `k`) right after a key ending in one of the tail letters, maybe closed
    /// by a quote and followed by one space (`key=`, `"key":`, `'key' :`).
    #[inline]
    pub fn key_ends(&self, k: usize) -> u64 {
        let back = |m: &Vec<u64>, n: u32| {
            let prev = if k > 0 { m[k - 1] } else { 0 };
            (m[k] << n) | (prev >> (64 - n))
        };
        let (t1, t2, t3) = (
            back(&self.tail, 1),
            back(&self.tail, 2),
            back(&self.tail, 3),
        );
        let (q1, q2) = (back(&self.quote, 1), back(&self.quote, 2));
        let s1 = back(&self.space, 1);
        self.sep[k] & (t1 | (q1 & t2) | (s1 & (t2 | (q2 & t3))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_classes() {
        let text = b"a1:= @?%_\"' Z9\x80\xff";
        let mut m = Masks::default();
        m.classify(text);
        let pos = |mask: u64| (0..64).filter(|i| mask >> i & 1 == 1).collect::<Vec<_>>();
        assert_eq!(pos(m.digit[0]), [1, 13]);
        assert_eq!(pos(m.special[0]), [5, 6, 7]);
        assert_eq!(pos(m.sep[0]), [2, 3]);
        assert_eq!(pos(m.quote[0]), [9, 10]);
        assert_eq!(pos(m.space[0]), [4, 11]);
        let long = [b'7'; 130];
        m.classify(&long);
        assert_eq!(m.digit, [u64::MAX, u64::MAX, 0b11, 0]);
    }
}
