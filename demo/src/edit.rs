//! From a prompt to an edited image, driven by the loaded weights.
//!
//! The prompt is split into lowercase words. A word that is one of an operation's keywords
//! selects that operation; a preceding "slightly"/"very" (or "no") scales it. When no keyword
//! matches, the prompt is embedded with the base model's hashed token table and the nearest
//! operation key is used, weighted by its similarity. The selected operations' colour matrices
//! and kernels are blended around the identity and applied after the base model's colour
//! transform, which the LoRA delta adjusts; the base model's tone curve comes last.

use image::{DynamicImage, GenericImageView, RgbImage, Rgba, RgbaImage};

use crate::model::{KERNEL, Models};

/// Highest accepted strength.
pub const MAX_STRENGTH: f32 = 2.0;
/// Lowest cosine similarity at which the embedding fallback applies an operation.
pub const EMBED_THRESHOLD: f32 = 0.25;

const SOFTER: &[&str] = &[
    "slightly", "slight", "bit", "little", "subtle", "subtly", "touch", "somewhat", "mildly",
];
const STRONGER: &[&str] = &[
    "very", "more", "much", "extra", "really", "strongly", "super", "lot", "heavily",
];
const NEGATE: &[&str] = &["no", "not", "without", "don't", "dont"];

/// How the operations were chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Matched {
    /// Keywords in the prompt.
    Keywords,
    /// No keyword: the nearest operation by embedding, with its cosine similarity.
    Embedding { op: String, score: f32 },
    /// Nothing applies (empty prompt, or nothing close enough).
    Nothing,
}

/// What an edit will do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Operations and their weights, in the edit model's order.
    pub ops: Vec<(String, f32)>,
    pub matched: Matched,
    /// The full colour transform: `edit · ((base + lora) · x + base_bias) + edit_bias`.
    pub matrix: [[f32; 3]; 3],
    pub bias: [f32; 3],
    /// The blended kernel, when any selected operation filters spatially.
    pub kernel: Option<[f32; KERNEL * KERNEL]>,
}

impl Plan {
    /// `warm=1.00,blur=0.50` (or `none`), for logs and the `X-Edit-Plan` header.
    pub fn summary(&self) -> String {
        if self.ops.is_empty() {
            return "none".to_owned();
        }
        self.ops
            .iter()
            .map(|(n, w)| format!("{n}={w:.2}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Lowercase words of the prompt (letters, digits and apostrophes).
pub fn tokens(prompt: &str) -> Vec<String> {
    prompt
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The embedding row of a token: FNV-1a of its bytes modulo the table size.
pub fn bucket(token: &str, buckets: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % buckets as u64) as usize
}

/// The normalised sum of the tokens' embedding rows (all zeros for no tokens).
pub fn embed(models: &Models, words: &[impl AsRef<str>]) -> Vec<f32> {
    let b = &models.base;
    let mut e = vec![0.0f32; b.dim];
    for w in words {
        let row = bucket(w.as_ref(), b.buckets) * b.dim;
        for (x, v) in e.iter_mut().zip(&b.embed[row..row + b.dim]) {
            *x += v;
        }
    }
    normalize(&mut e);
    e
}

pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

fn identity() -> [[f32; 3]; 3] {
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
}

fn delta_kernel() -> [f32; KERNEL * KERNEL] {
    let mut k = [0.0; KERNEL * KERNEL];
    k[KERNEL * KERNEL / 2] = 1.0;
    k
}

/// Weight of each operation the prompt selects by keyword (0 where none).
fn keyword_weights(models: &Models, words: &[String]) -> Vec<f32> {
    let mut weights = vec![0.0f32; models.edit.ops.len()];
    for (i, op) in models.edit.ops.iter().enumerate() {
        for (t, word) in words.iter().enumerate() {
            if !op.keywords.iter().any(|k| k == word) {
                continue;
            }
            let mut w = 1.0;
            for prev in words[t.saturating_sub(2)..t].iter().rev() {
                if NEGATE.contains(&prev.as_str()) {
                    w = 0.0;
                    break;
                }
                if SOFTER.contains(&prev.as_str()) {
                    w = 0.5;
                    break;
                }
                if STRONGER.contains(&prev.as_str()) {
                    w = 1.5;
                    break;
                }
            }
            weights[i] = f32::max(weights[i], w);
        }
    }
    weights
}

impl Models {
    /// Plans the edit a prompt asks for, at `strength` (clamped to 0..=MAX_STRENGTH).
    pub fn plan(&self, prompt: &str, strength: f32) -> Plan {
        let strength = if strength.is_finite() {
            strength.clamp(0.0, MAX_STRENGTH)
        } else {
            1.0
        };
        let words = tokens(prompt);
        let mut weights = keyword_weights(self, &words);
        let any_keyword = words
            .iter()
            .any(|w| self.edit.ops.iter().any(|op| op.keywords.contains(w)));
        let matched = if any_keyword {
            Matched::Keywords
        } else if words.is_empty() {
            Matched::Nothing
        } else {
            let e = embed(self, &words);
            let (best, score) = self
                .edit
                .ops
                .iter()
                .enumerate()
                .map(|(i, op)| (i, op.key.iter().zip(&e).map(|(a, b)| a * b).sum::<f32>()))
                .fold((0, f32::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
            if score >= EMBED_THRESHOLD {
                weights[best] = score.min(1.0);
                Matched::Embedding {
                    op: self.edit.ops[best].name.clone(),
                    score,
                }
            } else {
                Matched::Nothing
            }
        };
        weights.iter_mut().for_each(|w| *w *= strength);

        let mut edit = identity();
        let mut edit_bias = [0.0f32; 3];
        let mut kernel = delta_kernel();
        let mut spatial = false;
        let mut ops = Vec::new();
        for (op, &w) in self.edit.ops.iter().zip(&weights) {
            if w <= 0.0 {
                continue;
            }
            ops.push((op.name.clone(), w));
            let id = identity();
            for i in 0..3 {
                for j in 0..3 {
                    edit[i][j] += w * (op.matrix[i][j] - id[i][j]);
                }
                edit_bias[i] += w * op.bias[i];
            }
            let d = delta_kernel();
            if op.kernel != d {
                spatial = true;
                for (k, (o, dd)) in kernel.iter_mut().zip(op.kernel.iter().zip(&d)) {
                    *k += w * (o - dd);
                }
            }
        }
        // The adapter fine-tunes the base model's colour layer: base + (alpha / r)·B·A.
        let mut base = self.base.matrix;
        for (row, drow) in base.iter_mut().zip(&self.lora.delta) {
            for (x, d) in row.iter_mut().zip(drow) {
                *x += d;
            }
        }
        let mut matrix = [[0.0f32; 3]; 3];
        let mut bias = edit_bias;
        for i in 0..3 {
            for j in 0..3 {
                matrix[i][j] = (0..3).map(|k| edit[i][k] * base[k][j]).sum();
                bias[i] += edit[i][j] * self.base.bias[j];
            }
        }
        Plan {
            ops,
            matched,
            matrix,
            bias,
            kernel: spatial.then_some(kernel),
        }
    }

    /// Applies a plan. Alpha is kept as it is; the output is RGBA when the input has alpha.
    pub fn apply(&self, plan: &Plan, img: &DynamicImage) -> DynamicImage {
        let (w, h) = img.dimensions();
        let rgba = img.to_rgba8();
        let tone = &self.base.tone;
        let last = (tone.len() - 1) as f32;
        let curve = |x: f32| {
            let t = x.clamp(0.0, 1.0) * last;
            let i = (t.floor() as usize).min(tone.len() - 2);
            let f = t - i as f32;
            tone[i] * (1.0 - f) + tone[i + 1] * f
        };
        let mut px: Vec<[f32; 3]> = rgba
            .pixels()
            .map(|p| {
                let x = [
                    f32::from(p[0]) / 255.0,
                    f32::from(p[1]) / 255.0,
                    f32::from(p[2]) / 255.0,
                ];
                let m = &plan.matrix;
                let mut y = [0.0f32; 3];
                for (c, out) in y.iter_mut().enumerate() {
                    let v = m[c][0] * x[0] + m[c][1] * x[1] + m[c][2] * x[2] + plan.bias[c];
                    *out = curve(v);
                }
                y
            })
            .collect();
        if let Some(k) = &plan.kernel {
            px = convolve(&px, w as usize, h as usize, k);
        }
        let mut out = RgbaImage::new(w, h);
        for ((o, p), src) in out.pixels_mut().zip(&px).zip(rgba.pixels()) {
            let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            *o = Rgba([q(p[0]), q(p[1]), q(p[2]), src[3]]);
        }
        if img.color().has_alpha() {
            DynamicImage::ImageRgba8(out)
        } else {
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(out).to_rgb8())
        }
    }
}

/// A KERNEL x KERNEL convolution with clamped edges.
fn convolve(px: &[[f32; 3]], w: usize, h: usize, k: &[f32; KERNEL * KERNEL]) -> Vec<[f32; 3]> {
    let r = (KERNEL / 2) as isize;
    let mut out = vec![[0.0f32; 3]; px.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for ky in 0..KERNEL {
                let sy = (y as isize + ky as isize - r).clamp(0, h as isize - 1) as usize;
                for kx in 0..KERNEL {
                    let sx = (x as isize + kx as isize - r).clamp(0, w as isize - 1) as usize;
                    let kv = k[ky * KERNEL + kx];
                    if kv == 0.0 {
                        continue;
                    }
                    let s = &px[sy * w + sx];
                    acc[0] += kv * s[0];
                    acc[1] += kv * s[1];
                    acc[2] += kv * s[2];
                }
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// A small test picture: a colour gradient with a disc and stripes, so every edit shows.
pub fn sample_image(width: u32, height: u32) -> RgbImage {
    let (fw, fh) = (width.max(1) as f32, height.max(1) as f32);
    RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (x as f32 / fw, y as f32 / fh);
        let (dx, dy) = (u - 0.5, (v - 0.5) * fh / fw);
        if dx * dx + dy * dy < 0.04 {
            return image::Rgb([230, 190, 60]);
        }
        if (x / 6) % 5 == 0 && v > 0.75 {
            return image::Rgb([30, 30, 40]);
        }
        image::Rgb([
            (40.0 + 200.0 * u) as u8,
            (60.0 + 120.0 * v) as u8,
            (200.0 - 150.0 * u) as u8,
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::write_all;

    fn models() -> Models {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        Models::load(dir.path()).unwrap()
    }

    fn weight(plan: &Plan, op: &str) -> f32 {
        plan.ops
            .iter()
            .find(|(n, _)| n == op)
            .map_or(0.0, |(_, w)| *w)
    }

    fn mean_rgb(img: &DynamicImage) -> [f32; 3] {
        let rgb = img.to_rgb8();
        let n = rgb.pixels().len() as f32;
        let mut s = [0.0f32; 3];
        for p in rgb.pixels() {
            for c in 0..3 {
                s[c] += f32::from(p[c]);
            }
        }
        s.map(|x| x / n)
    }

    #[test]
    fn tokens_are_lowercase_words() {
        assert_eq!(
            tokens("Make it WARM, please!"),
            ["make", "it", "warm", "please"]
        );
        assert!(tokens("  ").is_empty());
    }

    #[test]
    fn keywords_select_operations_with_modifiers() {
        let m = models();
        let p = m.plan("make it warm", 1.0);
        assert_eq!(p.matched, Matched::Keywords);
        assert_eq!(p.summary(), "warm=1.00");
        assert!(p.kernel.is_none());

        let p = m.plan("slightly blurry and very vintage", 1.0);
        assert_eq!(weight(&p, "blur"), 0.5);
        assert_eq!(weight(&p, "sepia"), 1.5);
        assert!(p.kernel.is_some());

        let p = m.plan("no blur, but sharper", 0.5);
        assert_eq!(weight(&p, "blur"), 0.0);
        assert_eq!(weight(&p, "sharpen"), 0.5);

        assert_eq!(m.plan("warm", 9.0).ops[0].1, MAX_STRENGTH);
        assert_eq!(m.plan("warm", f32::NAN).ops[0].1, 1.0);
    }

    #[test]
    fn empty_prompt_applies_nothing_but_base_and_lora() {
        let m = models();
        let p = m.plan("", 1.0);
        assert_eq!(p.matched, Matched::Nothing);
        assert!(p.ops.is_empty());
        assert_eq!(p.summary(), "none");
    }

    #[test]
    fn unknown_words_fall_back_to_the_embedding() {
        let m = models();
        // A keyword's own embedding row is nearest to the key of its operation.
        let p = m.plan("cozy", 1.0);
        assert_eq!(p.matched, Matched::Keywords);
        let mut fallback = 0;
        for prompt in [
            "autumn leaves",
            "like a painting",
            "cinematic look",
            "zzz",
            "film",
        ] {
            let p = m.plan(prompt, 1.0);
            match &p.matched {
                Matched::Embedding { op, score } => {
                    fallback += 1;
                    assert!(*score >= EMBED_THRESHOLD);
                    assert!(weight(&p, op) > 0.0);
                }
                Matched::Nothing => assert!(p.ops.is_empty()),
                Matched::Keywords => panic!("{prompt:?} has no keyword"),
            }
            // Deterministic.
            assert_eq!(m.plan(prompt, 1.0).summary(), p.summary());
        }
        assert!(fallback >= 1, "no prompt used the embedding");
    }

    #[test]
    fn edits_change_the_picture_as_named() {
        let m = models();
        let img = DynamicImage::ImageRgb8(sample_image(40, 30));
        let before = mean_rgb(&img);
        let warm = m.apply(&m.plan("make it warm", 1.0), &img);
        assert_eq!((warm.width(), warm.height()), (40, 30));
        let after = mean_rgb(&warm);
        assert!(after[0] - after[2] > before[0] - before[2] + 5.0);

        let gray = m.apply(&m.plan("grayscale", 1.0), &img).to_rgb8();
        for p in gray.pixels() {
            assert!(
                p[0].abs_diff(p[1]) <= 2 && p[1].abs_diff(p[2]) <= 2,
                "{p:?}"
            );
        }

        let dark = mean_rgb(&m.apply(&m.plan("darker", 1.0), &img));
        assert!(dark.iter().sum::<f32>() < before.iter().sum::<f32>() - 30.0);
    }

    #[test]
    fn the_weights_drive_the_edit() {
        let mut m = models();
        let img = DynamicImage::ImageRgb8(sample_image(24, 16));
        let none = m.apply(&m.plan("", 1.0), &img).to_rgb8();
        let warm = m.apply(&m.plan("warm", 1.0), &img).to_rgb8();
        assert_ne!(none, warm);
        // With the warm operation's weights made neutral, "warm" changes nothing.
        let op = m.edit.ops.iter_mut().find(|o| o.name == "warm").unwrap();
        op.matrix = identity();
        op.bias = [0.0; 3];
        assert_eq!(m.apply(&m.plan("warm", 1.0), &img).to_rgb8(), none);
        // And the LoRA delta is part of every edit.
        m.lora.delta = [[0.0; 3]; 3];
        assert_ne!(m.apply(&m.plan("", 1.0), &img).to_rgb8(), none);
    }

    #[test]
    fn blur_smooths_and_alpha_is_kept() {
        let m = models();
        let mut rgba = DynamicImage::ImageRgb8(sample_image(32, 32)).to_rgba8();
        rgba.pixels_mut().for_each(|p| p[3] = 77);
        let img = DynamicImage::ImageRgba8(rgba);
        let out = m.apply(&m.plan("blur", 1.0), &img);
        assert!(out.color().has_alpha());
        assert!(out.to_rgba8().pixels().all(|p| p[3] == 77));
        // Total variation drops.
        let tv = |i: &DynamicImage| {
            let g = i.to_luma8();
            g.windows(2)
                .map(|w| i32::from(w[0]).abs_diff(i32::from(w[1])))
                .sum::<u32>()
        };
        let plain = m.apply(&m.plan("", 1.0), &img);
        assert!(tv(&out) < tv(&plain));
    }
}
