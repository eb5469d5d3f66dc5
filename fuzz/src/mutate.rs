//! A small structure-unaware mutator: bit flips, interesting values, inserted, deleted and
//! duplicated ranges, little-endian integers set to boundary values, splices of two inputs.

/// xorshift64*: deterministic from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// Applies 1 to 8 random mutations to `data`, using `other` for splices.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    let n = 1 + rng.below(8);
    for _ in 0..n {
        let len = data.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            3 if len > 0 => {
                let w = [2usize, 4, 8][rng.below(3)];
                let i = rng.below(len);
                let v = match rng.below(3) {
                    0 => INTERESTING[rng.below(INTERESTING.len())],
                    1 => (len as u64 + rng.below(16) as u64).wrapping_sub(8),
                    _ => rng.next(),
                };
                let b = v.to_le_bytes();
                for k in 0..w {
                    if i + k < len {
                        data[i + k] = b[k];
                    }
                }
            }
            4 if data.len() < max_len => {
                let i = rng.below(len + 1);
                let k = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
                data.splice(i..i, bytes);
            }
            5 if len > 1 => {
                let i = rng.below(len);
                let k = 1 + rng.below((len - i).min(64));
                data.drain(i..i + k);
            }
            6 if len > 1 && data.len() < max_len => {
                let i = rng.below(len);
                let k = 1 + rng.below((len - i).min(64));
                let piece = data[i..i + k].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, piece);
            }
            7 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                let k = rng.below((other.len() - from).min(4096) + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..from + k]);
            }
            8 if len > 0 => {
                data.truncate(rng.below(len));
            }
            _ if len > 0 => {
                // A pickle opcode at a random place.
                let ops = b"(.02FILNPRSVabcdghijlopqrstu}])1GJKMQTUXehjoqr\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98";
                let i = rng.below(len);
                data[i] = ops[rng.below(ops.len())];
            }
            _ => data.push(rng.next() as u8),
        }
        data.truncate(max_len);
    }
}
