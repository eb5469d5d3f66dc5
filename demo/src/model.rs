//! The three "models" and how they are loaded from safetensors files laid out like the real
//! ones under `models/`:
//!
//! - base model `Qwen/Qwen-Image`: a 3x3 colour matrix and bias, a tone curve, and a hashed
//!   token embedding table (the "text encoder");
//! - edit model `Qwen/Qwen-Image-Edit`: one colour matrix, bias, 5x5 kernel and key vector per
//!   editing operation; `config.json` names the operations and their keywords;
//! - LoRA adapter `DiffSynth-Studio/Qwen-Image-Edit-F2P`: a low-rank delta `B·A` on the colour
//!   matrix, scaled by `lora_alpha / r` from `adapter_config.json` (PEFT's layout).
//!
//! Every error names the file it was reading.

use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

/// Where the base model lives under the models directory.
pub const BASE_DIR: &str = "Qwen/Qwen-Image";
/// Where the edit model lives under the models directory.
pub const EDIT_DIR: &str = "Qwen/Qwen-Image-Edit";
/// Where the LoRA adapter lives under the models directory.
pub const LORA_DIR: &str = "DiffSynth-Studio/Qwen-Image-Edit-F2P";
/// Weight file names accepted for the base and edit models, in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "diffusion_pytorch_model.safetensors"];
/// The LoRA adapter's weights and configuration (PEFT's names).
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The model configuration next to the weights.
pub const CONFIG_FILE: &str = "config.json";
/// Side of the edit model's square convolution kernels.
pub const KERNEL: usize = 5;
/// The PEFT module the adapter targets.
pub const LORA_TARGET: &str = "color";
pub const LORA_A: &str = "base_model.model.color.lora_A.weight";
pub const LORA_B: &str = "base_model.model.color.lora_B.weight";

/// A failure to load a model file: the file and what was wrong with it.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for LoadError {}

fn fail(path: &Path, reason: impl Into<String>) -> LoadError {
    LoadError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// `config.json` of the base model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseConfig {
    #[serde(rename = "_class_name")]
    pub class_name: String,
    #[serde(rename = "_diffusers_version")]
    pub diffusers_version: String,
    pub embed_buckets: usize,
    pub embed_dim: usize,
    pub tone_points: usize,
}

/// `config.json` of the edit model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditConfig {
    #[serde(rename = "_class_name")]
    pub class_name: String,
    #[serde(rename = "_diffusers_version")]
    pub diffusers_version: String,
    pub embed_dim: usize,
    pub kernel_size: usize,
    pub operations: Vec<OperationConfig>,
}

/// One editing operation as `config.json` declares it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationConfig {
    pub name: String,
    pub keywords: Vec<String>,
}

/// `adapter_config.json` of the LoRA adapter (the fields PEFT writes that matter here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub base_model_name_or_path: String,
    pub bias: String,
    pub fan_in_fan_out: bool,
    pub inference_mode: bool,
    pub lora_alpha: f32,
    pub lora_dropout: f32,
    pub peft_type: String,
    pub r: usize,
    pub target_modules: Vec<String>,
    pub task_type: Option<String>,
}

/// What a loaded file held, for `/api/info`.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub role: &'static str,
    pub name: &'static str,
    pub path: PathBuf,
    pub bytes: usize,
    pub tensors: Vec<TensorInfo>,
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// The base model: the colour transform every edit starts from.
#[derive(Debug, Clone)]
pub struct BaseModel {
    pub matrix: [[f32; 3]; 3],
    pub bias: [f32; 3],
    /// Output level for evenly spaced input levels in [0, 1].
    pub tone: Vec<f32>,
    /// `buckets x dim`, row-major.
    pub embed: Vec<f32>,
    pub buckets: usize,
    pub dim: usize,
}

/// One operation of the edit model.
#[derive(Debug, Clone)]
pub struct Operation {
    pub name: String,
    pub keywords: Vec<String>,
    pub matrix: [[f32; 3]; 3],
    pub bias: [f32; 3],
    pub kernel: [f32; KERNEL * KERNEL],
    pub key: Vec<f32>,
}

/// The edit model.
#[derive(Debug, Clone)]
pub struct EditModel {
    pub ops: Vec<Operation>,
}

/// The LoRA adapter, with its delta precomputed.
#[derive(Debug, Clone)]
pub struct Lora {
    pub rank: usize,
    pub alpha: f32,
    /// `(alpha / r) · B·A`.
    pub delta: [[f32; 3]; 3],
}

/// Everything the service loaded at start.
#[derive(Debug, Clone)]
pub struct Models {
    pub base: BaseModel,
    pub edit: EditModel,
    pub lora: Lora,
    pub files: Vec<FileInfo>,
}

impl Models {
    /// Loads the three models from `dir` (the `models/` directory).
    pub fn load(dir: &Path) -> Result<Models, LoadError> {
        if !dir.is_dir() {
            return Err(fail(
                dir,
                "the models directory does not exist (run from the deployment directory or pass --models DIR)",
            ));
        }
        let mut files = Vec::new();
        let base = load_base(&dir.join(BASE_DIR), &mut files)?;
        let edit = load_edit(&dir.join(EDIT_DIR), base.dim, &mut files)?;
        let lora = load_lora(&dir.join(LORA_DIR), &mut files)?;
        Ok(Models {
            base,
            edit,
            lora,
            files,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        };
        fail(path, what)
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, LoadError> {
    let bytes = read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| fail(path, format!("invalid JSON: {e}")))
}

/// The first weight file of `WEIGHT_FILES` that exists in `dir`.
fn weight_file(dir: &Path) -> Result<PathBuf, LoadError> {
    for name in WEIGHT_FILES {
        let p = dir.join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(fail(
        &dir.join(WEIGHT_FILES[1]),
        format!(
            "file not found (looked for {} in {})",
            WEIGHT_FILES.join(" and "),
            dir.display()
        ),
    ))
}

/// A parsed safetensors file and where it came from.
struct Weights<'a> {
    path: &'a Path,
    st: SafeTensors<'a>,
}

impl<'a> Weights<'a> {
    fn parse(path: &'a Path, bytes: &'a [u8]) -> Result<Self, LoadError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| fail(path, format!("not a valid safetensors file: {e}")))?;
        Ok(Weights { path, st })
    }

    fn info(&self, role: &'static str, name: &'static str, bytes: usize) -> FileInfo {
        let mut tensors: Vec<TensorInfo> = self
            .st
            .iter()
            .map(|(n, v)| TensorInfo {
                name: n.to_owned(),
                dtype: format!("{:?}", v.dtype()),
                shape: v.shape().to_vec(),
            })
            .collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        FileInfo {
            role,
            name,
            path: self.path.to_owned(),
            bytes,
            tensors,
        }
    }

    /// The tensor `name` as f32 values, checked against `shape`, every value finite.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let v = self
            .st
            .tensor(name)
            .map_err(|_| fail(self.path, format!("tensor {name:?} is missing")))?;
        if v.shape() != shape {
            return Err(fail(
                self.path,
                format!(
                    "tensor {name:?} has shape {:?}, expected {shape:?}",
                    v.shape()
                ),
            ));
        }
        let values = decode(v.dtype(), v.data()).ok_or_else(|| {
            fail(
                self.path,
                format!(
                    "tensor {name:?} has unsupported dtype {:?} (F32, F16 or BF16 expected)",
                    v.dtype()
                ),
            )
        })?;
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(fail(
                self.path,
                format!("tensor {name:?} holds a non-finite value at index {i}"),
            ));
        }
        Ok(values)
    }
}

/// Little-endian tensor bytes to f32.
fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        _ => return None,
    })
}

pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Rounds to the nearest bfloat16, ties to even (finite inputs).
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let r = b + 0x7fff + ((b >> 16) & 1);
    (r >> 16) as u16
}

pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

fn mat3(v: &[f32]) -> [[f32; 3]; 3] {
    [[v[0], v[1], v[2]], [v[3], v[4], v[5]], [v[6], v[7], v[8]]]
}

fn vec3(v: &[f32]) -> [f32; 3] {
    [v[0], v[1], v[2]]
}

fn load_base(dir: &Path, files: &mut Vec<FileInfo>) -> Result<BaseModel, LoadError> {
    let cfg_path = dir.join(CONFIG_FILE);
    let cfg: BaseConfig = read_json(&cfg_path)?;
    if cfg.embed_buckets == 0 || cfg.embed_dim == 0 || cfg.tone_points < 2 {
        return Err(fail(
            &cfg_path,
            "embed_buckets, embed_dim must be positive and tone_points at least 2",
        ));
    }
    let path = weight_file(dir)?;
    let bytes = read(&path)?;
    let w = Weights::parse(&path, &bytes)?;
    let base = BaseModel {
        matrix: mat3(&w.tensor("color.weight", &[3, 3])?),
        bias: vec3(&w.tensor("color.bias", &[3])?),
        tone: w.tensor("tone.curve", &[cfg.tone_points])?,
        embed: w.tensor("text.embed", &[cfg.embed_buckets, cfg.embed_dim])?,
        buckets: cfg.embed_buckets,
        dim: cfg.embed_dim,
    };
    files.push(w.info("base", BASE_DIR, bytes.len()));
    Ok(base)
}

fn load_edit(dir: &Path, dim: usize, files: &mut Vec<FileInfo>) -> Result<EditModel, LoadError> {
    let cfg_path = dir.join(CONFIG_FILE);
    let cfg: EditConfig = read_json(&cfg_path)?;
    if cfg.kernel_size != KERNEL {
        return Err(fail(
            &cfg_path,
            format!(
                "kernel_size {} is not supported (only {KERNEL})",
                cfg.kernel_size
            ),
        ));
    }
    if cfg.embed_dim != dim {
        return Err(fail(
            &cfg_path,
            format!(
                "embed_dim {} does not match the base model's {dim}",
                cfg.embed_dim
            ),
        ));
    }
    if cfg.operations.is_empty() {
        return Err(fail(&cfg_path, "no operations declared"));
    }
    let n = cfg.operations.len();
    let path = weight_file(dir)?;
    let bytes = read(&path)?;
    let w = Weights::parse(&path, &bytes)?;
    let matrix = w.tensor("ops.matrix", &[n, 3, 3])?;
    let bias = w.tensor("ops.bias", &[n, 3])?;
    let kernel = w.tensor("ops.kernel", &[n, KERNEL, KERNEL])?;
    let key = w.tensor("ops.key", &[n, dim])?;
    let kk = KERNEL * KERNEL;
    let ops = cfg
        .operations
        .into_iter()
        .enumerate()
        .map(|(i, op)| {
            let mut k = [0.0; KERNEL * KERNEL];
            k.copy_from_slice(&kernel[i * kk..(i + 1) * kk]);
            Operation {
                name: op.name,
                keywords: op.keywords.iter().map(|s| s.to_lowercase()).collect(),
                matrix: mat3(&matrix[i * 9..i * 9 + 9]),
                bias: vec3(&bias[i * 3..i * 3 + 3]),
                kernel: k,
                key: key[i * dim..(i + 1) * dim].to_vec(),
            }
        })
        .collect();
    files.push(w.info("edit", EDIT_DIR, bytes.len()));
    Ok(EditModel { ops })
}

fn load_lora(dir: &Path, files: &mut Vec<FileInfo>) -> Result<Lora, LoadError> {
    let cfg_path = dir.join(ADAPTER_CONFIG);
    let cfg: AdapterConfig = read_json(&cfg_path)?;
    if cfg.peft_type != "LORA" {
        return Err(fail(
            &cfg_path,
            format!("peft_type {:?} is not supported (LORA)", cfg.peft_type),
        ));
    }
    if cfg.r == 0 || !cfg.lora_alpha.is_finite() {
        return Err(fail(&cfg_path, "r must be positive and lora_alpha finite"));
    }
    if !cfg.target_modules.iter().any(|m| m == LORA_TARGET) {
        return Err(fail(
            &cfg_path,
            format!("target_modules must include {LORA_TARGET:?}"),
        ));
    }
    let path = dir.join(ADAPTER_FILE);
    let bytes = read(&path)?;
    let w = Weights::parse(&path, &bytes)?;
    let r = cfg.r;
    let a = w.tensor(LORA_A, &[r, 3])?;
    let b = w.tensor(LORA_B, &[3, r])?;
    let scale = cfg.lora_alpha / r as f32;
    let mut delta = [[0.0f32; 3]; 3];
    for (i, row) in delta.iter_mut().enumerate() {
        for (j, d) in row.iter_mut().enumerate() {
            *d = scale * (0..r).map(|k| b[i * r + k] * a[k * 3 + j]).sum::<f32>();
        }
    }
    files.push(w.info("lora", LORA_DIR, bytes.len()));
    Ok(Lora {
        rank: r,
        alpha: cfg.lora_alpha,
        delta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(bf16_to_f32(f32_to_bf16(1.5)), 1.5);
        assert_eq!(bf16_to_f32(f32_to_bf16(-0.25)), -0.25);
        let x = 0.123_456_f32;
        assert!((bf16_to_f32(f32_to_bf16(x)) - x).abs() < 1e-3);
    }
}
