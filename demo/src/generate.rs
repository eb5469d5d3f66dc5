//! Deterministic generation of the demo's model files (`gen-weights`): the same bytes on every
//! run, so the files committed under `examples/image-edit/models/` can be checked against it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};

use crate::edit::{bucket, normalize};
use crate::model::{
    ADAPTER_CONFIG, ADAPTER_FILE, AdapterConfig, BASE_DIR, BaseConfig, CONFIG_FILE, EDIT_DIR,
    EditConfig, KERNEL, LORA_A, LORA_B, LORA_DIR, LORA_TARGET, OperationConfig, WEIGHT_FILES,
    bf16_to_f32, f32_to_bf16,
};

const DIFFUSERS_VERSION: &str = "0.35.1";
const EMBED_BUCKETS: usize = 256;
const EMBED_DIM: usize = 16;
const TONE_POINTS: usize = 256;
const LORA_RANK: usize = 2;
const LORA_ALPHA: f32 = 4.0;
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// A generated file: its path under the models directory and its bytes.
pub struct GeneratedFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// SplitMix64: a tiny, fixed pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Roughly standard normal (Irwin-Hall with 4 terms, rescaled).
    fn normal(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 3f32.sqrt()
    }
}

fn scaled(s: f32) -> [[f32; 3]; 3] {
    [[s, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, s]]
}

fn diag(a: f32, b: f32, c: f32) -> [[f32; 3]; 3] {
    [[a, 0.0, 0.0], [0.0, b, 0.0], [0.0, 0.0, c]]
}

/// `(1 + s)·I - s·1·lumaᵀ`: saturation scaled by `1 + s`, grays unchanged.
fn saturation(s: f32) -> [[f32; 3]; 3] {
    let mut m = scaled(1.0 + s);
    for row in &mut m {
        for (x, l) in row.iter_mut().zip(LUMA) {
            *x -= s * l;
        }
    }
    m
}

fn delta() -> [f32; KERNEL * KERNEL] {
    let mut k = [0.0; KERNEL * KERNEL];
    k[KERNEL * KERNEL / 2] = 1.0;
    k
}

/// Outer product of a binomial row, centred in a KERNEL x KERNEL kernel.
fn binomial(row: &[f32]) -> [f32; KERNEL * KERNEL] {
    let sum: f32 = row.iter().sum();
    let off = (KERNEL - row.len()) / 2;
    let mut k = [0.0; KERNEL * KERNEL];
    for (i, a) in row.iter().enumerate() {
        for (j, b) in row.iter().enumerate() {
            k[(i + off) * KERNEL + j + off] = a * b / (sum * sum);
        }
    }
    k
}

struct OpDef {
    name: &'static str,
    keywords: &'static [&'static str],
    matrix: [[f32; 3]; 3],
    bias: [f32; 3],
    kernel: [f32; KERNEL * KERNEL],
}

fn operations() -> Vec<OpDef> {
    let op = |name, keywords, matrix, bias| OpDef {
        name,
        keywords,
        matrix,
        bias,
        kernel: delta(),
    };
    let gray = [LUMA, LUMA, LUMA];
    let blur = binomial(&[1.0, 4.0, 6.0, 4.0, 1.0]);
    let soft = binomial(&[1.0, 2.0, 1.0]);
    let mut sharpen = delta();
    for (s, b) in sharpen.iter_mut().zip(soft) {
        *s = 2.0 * *s - b;
    }
    let mut fade = saturation(-0.6);
    for row in &mut fade {
        row.iter_mut().for_each(|x| *x *= 0.85);
    }
    vec![
        op(
            "warm",
            &[
                "warm", "warmer", "warmth", "sunset", "golden", "cozy", "summer",
            ],
            diag(1.08, 1.0, 0.84),
            [0.04, 0.01, -0.02],
        ),
        op(
            "cool",
            &["cool", "cooler", "cold", "blue", "icy", "winter"],
            diag(0.88, 0.98, 1.1),
            [-0.02, 0.0, 0.05],
        ),
        op(
            "grayscale",
            &[
                "grayscale",
                "greyscale",
                "gray",
                "grey",
                "monochrome",
                "mono",
                "noir",
            ],
            gray,
            [0.0; 3],
        ),
        op(
            "sepia",
            &["sepia", "vintage", "old", "antique", "retro"],
            [
                [0.393, 0.769, 0.189],
                [0.349, 0.686, 0.168],
                [0.272, 0.534, 0.131],
            ],
            [0.0; 3],
        ),
        op(
            "invert",
            &["invert", "inverted", "negative", "inverse"],
            scaled(-1.0),
            [1.0; 3],
        ),
        op(
            "brighten",
            &[
                "bright", "brighter", "brighten", "lighter", "lighten", "sunny",
            ],
            scaled(1.15),
            [0.08; 3],
        ),
        op(
            "darken",
            &["dark", "darker", "darken", "night", "dim", "moody"],
            scaled(0.7),
            [-0.02; 3],
        ),
        op(
            "contrast",
            &["contrast", "punchy", "dramatic", "crisp"],
            scaled(1.35),
            [-0.175; 3],
        ),
        op(
            "saturate",
            &[
                "saturate",
                "saturated",
                "vivid",
                "vibrant",
                "colorful",
                "colourful",
            ],
            saturation(0.6),
            [0.0; 3],
        ),
        op(
            "fade",
            &["fade", "faded", "washed", "muted", "pastel", "desaturate"],
            fade,
            [0.1; 3],
        ),
        OpDef {
            kernel: blur,
            ..op(
                "blur",
                &[
                    "blur", "blurry", "blurred", "soft", "soften", "dreamy", "smooth",
                ],
                scaled(1.0),
                [0.0; 3],
            )
        },
        OpDef {
            kernel: sharpen,
            ..op(
                "sharpen",
                &[
                    "sharpen", "sharp", "sharper", "detail", "details", "clarity",
                ],
                scaled(1.0),
                [0.0; 3],
            )
        },
    ]
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn flat(m: &[[f32; 3]]) -> Vec<f32> {
    m.iter().flatten().copied().collect()
}

/// Serialises tensors `(name, dtype, shape, little-endian bytes)` with `{"format": "pt"}`.
fn safetensors(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            let v = TensorView::new(*d, s.clone(), b).expect("tensor shape matches its data");
            (*n, v)
        })
        .collect();
    let meta = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize(views, Some(meta)).expect("serialising in memory cannot fail")
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("config serialises");
    s.push(b'\n');
    s
}

/// Every model file, in a fixed order.
pub fn generate() -> Vec<GeneratedFile> {
    let mut rng = Rng(0x005e_ed0f_1ea5_ed17);
    let weights = WEIGHT_FILES[1];

    // Base model: a slight colour look, a gentle S-shaped tone curve, a token embedding table.
    let base_matrix = [
        [1.02, -0.01, -0.01],
        [-0.01, 1.02, -0.01],
        [-0.01, -0.01, 1.02],
    ];
    let base_bias = [0.005, 0.0, -0.005];
    let tone: Vec<f32> = (0..TONE_POINTS)
        .map(|i| {
            let x = i as f32 / (TONE_POINTS - 1) as f32;
            x - 0.04 * (2.0 * std::f32::consts::PI * x).sin()
        })
        .collect();
    let embed: Vec<u16> = (0..EMBED_BUCKETS * EMBED_DIM)
        .map(|_| f32_to_bf16(rng.normal() * 0.5))
        .collect();
    let embed_f32: Vec<f32> = embed.iter().map(|&h| bf16_to_f32(h)).collect();
    let base_cfg = BaseConfig {
        class_name: "QwenImageTransformer2DModel".into(),
        diffusers_version: DIFFUSERS_VERSION.into(),
        embed_buckets: EMBED_BUCKETS,
        embed_dim: EMBED_DIM,
        tone_points: TONE_POINTS,
    };
    let base = safetensors(&[
        (
            "color.weight",
            Dtype::F32,
            vec![3, 3],
            f32_bytes(&flat(&base_matrix)),
        ),
        ("color.bias", Dtype::F32, vec![3], f32_bytes(&base_bias)),
        (
            "tone.curve",
            Dtype::F32,
            vec![TONE_POINTS],
            f32_bytes(&tone),
        ),
        (
            "text.embed",
            Dtype::BF16,
            vec![EMBED_BUCKETS, EMBED_DIM],
            embed.iter().flat_map(|h| h.to_le_bytes()).collect(),
        ),
    ]);

    // Edit model: one matrix, bias, kernel and key per operation. A key is the normalised sum
    // of its keywords' embedding rows, so prompts near those words select it.
    let ops = operations();
    let n = ops.len();
    let keys: Vec<f32> = ops
        .iter()
        .flat_map(|op| {
            let mut k = vec![0.0f32; EMBED_DIM];
            for word in op.keywords {
                let row = bucket(word, EMBED_BUCKETS) * EMBED_DIM;
                for (x, v) in k.iter_mut().zip(&embed_f32[row..row + EMBED_DIM]) {
                    *x += v;
                }
            }
            normalize(&mut k);
            k
        })
        .collect();
    let matrices: Vec<f32> = ops.iter().flat_map(|o| flat(&o.matrix)).collect();
    let biases: Vec<f32> = ops.iter().flat_map(|o| o.bias).collect();
    let kernels: Vec<f32> = ops.iter().flat_map(|o| o.kernel).collect();
    let edit = safetensors(&[
        (
            "ops.matrix",
            Dtype::F32,
            vec![n, 3, 3],
            f32_bytes(&matrices),
        ),
        ("ops.bias", Dtype::F32, vec![n, 3], f32_bytes(&biases)),
        (
            "ops.kernel",
            Dtype::F32,
            vec![n, KERNEL, KERNEL],
            f32_bytes(&kernels),
        ),
        ("ops.key", Dtype::F32, vec![n, EMBED_DIM], f32_bytes(&keys)),
    ]);
    let edit_cfg = EditConfig {
        class_name: "QwenImageEditTransformer2DModel".into(),
        diffusers_version: DIFFUSERS_VERSION.into(),
        embed_dim: EMBED_DIM,
        kernel_size: KERNEL,
        operations: ops
            .iter()
            .map(|o| OperationConfig {
                name: o.name.into(),
                keywords: o.keywords.iter().map(|s| (*s).into()).collect(),
            })
            .collect(),
    };

    // LoRA: a rank-2 saturation lift, delta = 0.12·(I - 1·lumaᵀ), whose columns all lie in
    // luma's orthogonal complement, so rows 0 and 1 span it: delta = B0·A0 with A0 = rows 0..2
    // and B0 = [[1, 0], [0, 1], [-l0/l2, -l1/l2]]. A mixing matrix R spreads it over both
    // factors as training would (A = R·A0, B = B0·R⁻¹), and B is divided by alpha / r.
    let target = saturation(0.12);
    let d: Vec<[f32; 3]> = target
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut r = *row;
            r[i] -= 1.0;
            r
        })
        .collect();
    let a0 = [d[0], d[1]];
    let b0 = [
        [1.0, 0.0],
        [0.0, 1.0],
        [-LUMA[0] / LUMA[2], -LUMA[1] / LUMA[2]],
    ];
    let r = [[0.8f32, 0.3], [-0.2, 0.9]];
    let det = r[0][0] * r[1][1] - r[0][1] * r[1][0];
    let r_inv = [
        [r[1][1] / det, -r[0][1] / det],
        [-r[1][0] / det, r[0][0] / det],
    ];
    let scale = LORA_ALPHA / LORA_RANK as f32;
    let a: Vec<f32> = (0..LORA_RANK)
        .flat_map(|i| (0..3).map(move |j| r[i][0] * a0[0][j] + r[i][1] * a0[1][j]))
        .collect();
    let b: Vec<f32> = (0..3)
        .flat_map(|i| {
            (0..LORA_RANK).map(move |j| (b0[i][0] * r_inv[0][j] + b0[i][1] * r_inv[1][j]) / scale)
        })
        .collect();
    let lora = safetensors(&[
        (LORA_A, Dtype::F32, vec![LORA_RANK, 3], f32_bytes(&a)),
        (LORA_B, Dtype::F32, vec![3, LORA_RANK], f32_bytes(&b)),
    ]);
    let adapter_cfg = AdapterConfig {
        base_model_name_or_path: EDIT_DIR.into(),
        bias: "none".into(),
        fan_in_fan_out: false,
        inference_mode: true,
        lora_alpha: LORA_ALPHA,
        lora_dropout: 0.0,
        peft_type: "LORA".into(),
        r: LORA_RANK,
        target_modules: vec![LORA_TARGET.into()],
        task_type: None,
    };

    let file = |dir: &str, name: &str, bytes| GeneratedFile {
        path: Path::new(dir).join(name),
        bytes,
    };
    vec![
        file(BASE_DIR, CONFIG_FILE, json(&base_cfg)),
        file(BASE_DIR, weights, base),
        file(EDIT_DIR, CONFIG_FILE, json(&edit_cfg)),
        file(EDIT_DIR, weights, edit),
        file(LORA_DIR, ADAPTER_CONFIG, json(&adapter_cfg)),
        file(LORA_DIR, ADAPTER_FILE, lora),
    ]
}

/// Writes every model file under `dir`, creating directories as needed.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for f in generate() {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| annotate(e, parent))?;
        }
        std::fs::write(&path, &f.bytes).map_err(|e| annotate(e, &path))?;
        written.push(path);
    }
    Ok(written)
}

fn annotate(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Models;

    #[test]
    fn generation_is_deterministic_and_small() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 6);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.path, y.path);
            assert_eq!(
                x.bytes,
                y.bytes,
                "{} differs between runs",
                x.path.display()
            );
            assert!(x.bytes.len() < 64 * 1024, "{} is too big", x.path.display());
        }
    }

    #[test]
    fn the_lora_delta_is_the_saturation_lift() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        let m = Models::load(dir.path()).unwrap();
        let want = saturation(0.12);
        for (i, (got_row, want_row)) in m.lora.delta.iter().zip(want).enumerate() {
            for (j, (got, want)) in got_row.iter().zip(want_row).enumerate() {
                let id = if i == j { 1.0 } else { 0.0 };
                assert!((got - (want - id)).abs() < 1e-5, "delta[{i}][{j}] = {got}");
            }
        }
        assert_eq!(m.lora.rank, LORA_RANK);
    }

    /// The files committed in the example deployment are exactly what `gen-weights` writes.
    #[test]
    fn committed_example_models_match_the_generator() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/image-edit/models");
        for f in generate() {
            let path = models.join(&f.path);
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run gen-weights", path.display()));
            assert!(
                committed == f.bytes,
                "{} differs from the generator's output; regenerate with \
                 `cargo run -p image-edit-demo -- gen-weights examples/image-edit/models`",
                path.display()
            );
        }
    }
}
