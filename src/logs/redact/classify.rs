//! One pass over the text, 64 bytes at a time with 128-bit vectors, that marks the bytes the
//! rules start from: digits, `@` `?` `%`, key/value separators (`:` `=`), word characters and
//! quotes (what may end a key), and blanks. Everything else is found from these bit masks.

use wide::i8x16;

/// Bit masks of a buffer, one `u64` per 64 bytes (bit `i` of word `k` is byte `64k + i`).
#[derive(Debug, Default)]
pub struct Masks {
    pub digit: Vec<u64>,
    /// `@`, `?`, `%`.
    pub special: Vec<u64>,
    /// `:`, `=`.
    pub sep: Vec<u64>,
    /// `[A-Za-z_]`, `"`, `'`: what ends a key (digits do not: `11:43`, `127.0.0.1:8000`).
    pub word: Vec<u64>,
    /// A space.
    pub space: Vec<u64>,
}

#[inline]
fn vec16(b: &[u8]) -> i8x16 {
    let mut a = [0i8; 16];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s as i8;
    }
    i8x16::new(a)
}

#[inline]
fn eq(v: i8x16, c: u8) -> i8x16 {
    v.simd_eq(i8x16::splat(c as i8))
}

/// `lo <= b <= lo + n - 1` for unsigned bytes: shift the range to the bottom of i8.
#[inline]
fn in_range(v: i8x16, lo: u8, n: u8) -> i8x16 {
    let shifted = v - i8x16::splat((lo as i8).wrapping_add(-128));
    i8x16::splat((n as i8).wrapping_add(-128)).simd_gt(shifted)
}

#[inline]
fn bits(m: i8x16) -> u64 {
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
            &mut self.word,
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
            let (mut d, mut s, mut p, mut w, mut sp) = (0u64, 0u64, 0u64, 0u64, 0u64);
            for q in 0..4 {
                let v = vec16(&block[q * 16..q * 16 + 16]);
                let digit = in_range(v, b'0', 10);
                let letter = in_range(v | i8x16::splat(0x20), b'a', 26);
                let shift = q * 16;
                d |= bits(digit) << shift;
                s |= bits(eq(v, b'@') | eq(v, b'?') | eq(v, b'%')) << shift;
                p |= bits(eq(v, b':') | eq(v, b'=')) << shift;
                w |= bits(letter | eq(v, b'_') | eq(v, b'"') | eq(v, b'\'')) << shift;
                sp |= bits(eq(v, b' ')) << shift;
            }
            self.digit[k] = d;
            self.special[k] = s;
            self.sep[k] = p;
            self.word[k] = w;
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

    /// Separators (word `k`) right after a key: a word character or quote, maybe one space
    /// between (`key=`, `"key":`, `key :`). `prev` is the word before.
    #[inline]
    pub fn key_ends(&self, k: usize) -> u64 {
        let (w, sp) = (self.word[k], self.space[k]);
        let (pw, psp) = if k > 0 {
            (self.word[k - 1], self.space[k - 1])
        } else {
            (0, 0)
        };
        let w1 = (w << 1) | (pw >> 63);
        let w2 = (w << 2) | (pw >> 62);
        let sp1 = (sp << 1) | (psp >> 63);
        self.sep[k] & (w1 | (sp1 & w2))
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
        assert_eq!(pos(m.word[0]), [0, 8, 9, 10, 12]);
        assert_eq!(pos(m.space[0]), [4, 11]);
        let long = [b'7'; 130];
        m.classify(&long);
        assert_eq!(m.digit, [u64::MAX, u64::MAX, 0b11, 0]);
    }
}
