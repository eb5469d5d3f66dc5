//! Byte vectors for the log redactor's classification pass, and the one runtime switch to
//! 256-bit AVX2 vectors on CPUs that have them.
//!
//! Code written once against [`Lanes`] runs through [`dispatch`]: with AVX2 when the CPU has it
//! (checked at run time, so the binary still runs on any x86-64), otherwise with portable
//! 128-bit vectors (SSE2 on x86-64, NEON on aarch64, scalar elsewhere).

use wide::u8x16;

/// A vector of bytes. Every method is a single instruction or two.
pub trait Lanes: Copy {
    /// Bytes in a vector (16 or 32); a block of 64 bytes is a whole number of vectors.
    const WIDTH: usize;
    /// The first [`Self::WIDTH`] bytes of `b`.
    fn load(b: &[u8]) -> Self;
    fn splat(c: u8) -> Self;
    /// Lanes equal to `c` (all ones), the others zero.
    fn eq(self, c: u8) -> Self;
    /// Lanes with `lo <= byte < lo + n` (unsigned).
    fn in_range(self, lo: u8, n: u8) -> Self;
    fn or(self, o: Self) -> Self;
    /// One bit per lane, from the lane's top bit.
    fn bits(self) -> u64;
    /// Whether [`Self::lookup`] is a couple of instructions here; where it is not, callers
    /// should prefer comparisons.
    const FAST_LOOKUP: bool;
    /// Each lane `b` becomes `lo[b & 15] & hi[b >> 4]`: bytes sorted into up to eight
    /// classes, one bit each, by their two nibbles.
    fn lookup(self, lo: &[u8; 16], hi: &[u8; 16]) -> Self;
    /// One bit per lane: whether bit `k` (0-7) of the lane is set.
    fn bit(self, k: u32) -> u64;
    /// One bit per lane: whether the lane has any of `bits` set.
    fn any(self, bits: u8) -> u64;
}

/// Code generic over [`Lanes`], run by [`dispatch`].
///
/// A `V` value must not leave `run` (kept in a static, boxed as a trait object): the AVX2
/// methods are sound only while `run` executes under [`dispatch`], which checked the CPU.
pub trait Kernel {
    type Output;
    /// Runs with vectors `V`; implementations should be `#[inline(always)]` so they are
    /// compiled for the instruction set `V` needs.
    fn run<V: Lanes>(self) -> Self::Output;
}

/// Runs `k` with the widest vectors this CPU has; `portable` forces the 128-bit ones.
pub fn dispatch<K: Kernel>(k: K, portable: bool) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if !portable && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only feature `avx2_run` is compiled for.
        return unsafe { x86::avx2_run(k) };
    }
    let _ = portable;
    k.run::<Portable>()
}

/// 128-bit vectors from `wide` (SSE2, NEON or scalar, chosen at compile time).
#[derive(Clone, Copy)]
struct Portable(u8x16);

impl Lanes for Portable {
    const WIDTH: usize = 16;

    #[inline(always)]
    fn load(b: &[u8]) -> Self {
        let a: [u8; 16] = b[..16].try_into().unwrap_or([0; 16]);
        Self(u8x16::new(a))
    }

    #[inline(always)]
    fn splat(c: u8) -> Self {
        Self(u8x16::splat(c))
    }

    #[inline(always)]
    fn eq(self, c: u8) -> Self {
        Self(self.0.simd_eq(u8x16::splat(c)))
    }

    #[inline(always)]
    fn in_range(self, lo: u8, n: u8) -> Self {
        let d = self.0 - u8x16::splat(lo);
        Self(d.min(u8x16::splat(n - 1)).simd_eq(d))
    }

    #[inline(always)]
    fn or(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }

    #[inline(always)]
    fn bits(self) -> u64 {
        u64::from(self.0.to_bitmask() as u16)
    }

    const FAST_LOOKUP: bool = false;

    #[inline(always)]
    fn lookup(self, lo: &[u8; 16], hi: &[u8; 16]) -> Self {
        let a = self.0.to_array();
        Self(u8x16::new(std::array::from_fn(|i| {
            lo[usize::from(a[i] & 15)] & hi[usize::from(a[i] >> 4)]
        })))
    }

    #[inline(always)]
    fn bit(self, k: u32) -> u64 {
        let b = u8x16::splat(1 << k);
        Self((self.0 & b).simd_eq(b)).bits()
    }

    #[inline(always)]
    fn any(self, bits: u8) -> u64 {
        !Self((self.0 & u8x16::splat(bits)).simd_eq(u8x16::splat(0))).bits() & 0xffff
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256i, _mm_cvtsi32_si128, _mm_loadu_si128, _mm256_and_si256, _mm256_broadcastsi128_si256,
        _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8,
        _mm256_sll_epi16, _mm256_srli_epi16, _mm256_sub_epi8,
    };

    use super::{Kernel, Lanes};

    /// 256-bit AVX2 vectors. Only [`avx2_run`] hands this type to code, so its methods only
    /// ever run on a CPU with AVX2.
    #[derive(Clone, Copy)]
    pub(super) struct Avx2(__m256i);

    /// Runs `k` with AVX2 vectors.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2_run<K: Kernel>(k: K) -> K::Output {
        k.run::<Avx2>()
    }

    // SAFETY (every method): `Avx2` values exist only inside `avx2_run`, which runs only after
    // the CPU was found to support AVX2; the methods are inlined into it.
    impl Lanes for Avx2 {
        const WIDTH: usize = 32;

        #[inline(always)]
        fn load(b: &[u8]) -> Self {
            let b = &b[..32];
            // SAFETY: `b` holds 32 readable bytes; the load is unaligned. AVX2: see above.
            Self(unsafe { _mm256_loadu_si256(b.as_ptr().cast()) })
        }

        #[inline(always)]
        fn splat(c: u8) -> Self {
            // SAFETY: AVX2, see above.
            Self(unsafe { _mm256_set1_epi8(c as i8) })
        }

        #[inline(always)]
        fn eq(self, c: u8) -> Self {
            // SAFETY: AVX2, see above.
            Self(unsafe { _mm256_cmpeq_epi8(self.0, _mm256_set1_epi8(c as i8)) })
        }

        #[inline(always)]
        fn in_range(self, lo: u8, n: u8) -> Self {
            // SAFETY: AVX2, see above.
            unsafe {
                let d = _mm256_sub_epi8(self.0, _mm256_set1_epi8(lo as i8));
                Self(_mm256_cmpeq_epi8(
                    _mm256_min_epu8(d, _mm256_set1_epi8((n - 1) as i8)),
                    d,
                ))
            }
        }

        #[inline(always)]
        fn or(self, o: Self) -> Self {
            // SAFETY: AVX2, see above.
            Self(unsafe { _mm256_or_si256(self.0, o.0) })
        }

        #[inline(always)]
        fn bits(self) -> u64 {
            // SAFETY: AVX2, see above.
            u64::from(unsafe { _mm256_movemask_epi8(self.0) } as u32)
        }

        const FAST_LOOKUP: bool = true;

        #[inline(always)]
        fn lookup(self, lo: &[u8; 16], hi: &[u8; 16]) -> Self {
            // SAFETY: the tables are 16 readable bytes each, loaded unaligned. AVX2: see above.
            unsafe {
                let lo_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(lo.as_ptr().cast()));
                let hi_t = _mm256_broadcastsi128_si256(_mm_loadu_si128(hi.as_ptr().cast()));
                let nib = _mm256_set1_epi8(0x0f);
                let lo_i = _mm256_and_si256(self.0, nib);
                let hi_i = _mm256_and_si256(_mm256_srli_epi16::<4>(self.0), nib);
                Self(_mm256_and_si256(
                    _mm256_shuffle_epi8(lo_t, lo_i),
                    _mm256_shuffle_epi8(hi_t, hi_i),
                ))
            }
        }

        #[inline(always)]
        fn bit(self, k: u32) -> u64 {
            // Shifting each 16-bit lane left by `7 - k` moves bit `k` of both its bytes to
            // their top bits. SAFETY: AVX2, see above.
            let shift = unsafe { _mm_cvtsi32_si128((7 - k) as i32) };
            Self(unsafe { _mm256_sll_epi16(self.0, shift) }).bits()
        }

        #[inline(always)]
        fn any(self, bits: u8) -> u64 {
            // SAFETY: AVX2, see above.
            let none = unsafe {
                _mm256_cmpeq_epi8(
                    _mm256_and_si256(self.0, _mm256_set1_epi8(bits as i8)),
                    _mm256_setzero_si256(),
                )
            };
            !Self(none).bits() & 0xffff_ffff
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions of `c` and of digits in `buf`, through whichever vectors are chosen.
    struct Find<'a>(&'a [u8], u8);

    impl Kernel for Find<'_> {
        type Output = (u64, u64);

        #[inline(always)]
        fn run<V: Lanes>(self) -> (u64, u64) {
            let (mut eq, mut digit) = (0, 0);
            for i in (0..64).step_by(V::WIDTH) {
                let v = V::load(&self.0[i..]);
                eq |= v.eq(self.1).or(V::splat(0).eq(1)).bits() << i;
                digit |= v.in_range(b'0', 10).bits() << i;
            }
            (eq, digit)
        }
    }

    /// The lookup, bit and any results for 64 bytes.
    struct Classes<'a>(&'a [u8]);

    const LO: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 3, 5, 9, 17, 33, 65, 129, 255];
    const HI: [u8; 16] = [255, 1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 7, 0, 0, 0];

    impl Kernel for Classes<'_> {
        type Output = Vec<u64>;

        #[inline(always)]
        fn run<V: Lanes>(self) -> Vec<u64> {
            let mut out = vec![0u64; 9];
            for i in (0..64).step_by(V::WIDTH) {
                let c = V::load(&self.0[i..]).lookup(&LO, &HI);
                for k in 0..8 {
                    out[k as usize] |= c.bit(k) << i;
                }
                out[8] |= c.any(0x81) << i;
            }
            out
        }
    }

    #[test]
    fn lookups_agree() {
        for start in [0u8, 64, 128, 192] {
            let text: Vec<u8> = (start..=start + 63).collect();
            let mut want = vec![0u64; 9];
            for (i, b) in text.iter().enumerate() {
                let c = LO[usize::from(b & 15)] & HI[usize::from(b >> 4)];
                for (k, w) in want.iter_mut().take(8).enumerate() {
                    *w |= u64::from(c >> k & 1) << i;
                }
                want[8] |= u64::from(c & 0x81 != 0) << i;
            }
            for portable in [true, false] {
                assert_eq!(
                    dispatch(Classes(&text), portable),
                    want,
                    "from {start}, portable={portable}"
                );
            }
        }
    }

    #[test]
    fn both_widths_agree() {
        let text: Vec<u8> = (0..64u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(5))
            .collect();
        let c = text[9];
        let want_eq = text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == c)
            .fold(0u64, |m, (i, _)| m | 1 << i);
        let want_digit = text
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_digit())
            .fold(0u64, |m, (i, _)| m | 1 << i);
        for portable in [true, false] {
            assert_eq!(
                dispatch(Find(&text, c), portable),
                (want_eq, want_digit),
                "portable={portable}"
            );
        }
    }
}
