//! Grouping weight files into read-only tiers: one per model directory, collapsed upward to a
//! shared parent (`models/Qwen` for `models/Qwen/A` and `models/Qwen/B`), adapters on their
//! own, Hugging Face cache entries (`models--org--name`) whole, and single files where the
//! weights sit beside the app's code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::walk::{FileInfo, Tree};

/// What a proposed tier holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierKind {
    /// One or more base models.
    Models,
    /// A fine-tuning adapter (LoRA and the like).
    Adapter,
    /// A Hugging Face cache entry (`models--org--name`, with blobs/ and snapshots/).
    HfCache,
    /// A single weight file that shares its directory with the app's code.
    File,
}

/// A proposed read-only tier.
#[derive(Debug, Clone)]
pub struct TierProposal {
    /// Relative to the deployment root.
    pub rel: PathBuf,
    pub kind: TierKind,
    /// The model directories merged into it (just `rel` when nothing was merged).
    pub models: BTreeSet<PathBuf>,
    /// Regular files under it and their total size.
    pub files: usize,
    pub bytes: u64,
    /// Weight files by format name.
    pub formats: BTreeMap<&'static str, usize>,
    /// Weight files under it that run code when loaded (pickles), relative to the root.
    pub code: Vec<PathBuf>,
    /// For adapters in a tier of their own: the tier that contains them, if any.
    pub inside: Option<PathBuf>,
}

/// Groups the weights of `tree` into tiers. `blocked` are directories no tier may contain or
/// be (the app's code, the private directories); the root is never a tier.
pub fn group(tree: &Tree, blocked: &[PathBuf]) -> Vec<TierProposal> {
    let is_blocked =
        |d: &Path| d.as_os_str().is_empty() || blocked.iter().any(|b| b.starts_with(d));
    let weights: Vec<&FileInfo> = tree
        .files
        .iter()
        .filter(|f| f.format.is_weights())
        .collect();

    // 1. A unit per model directory (or file).
    let mut units: BTreeMap<PathBuf, Unit> = BTreeMap::new();
    for f in &weights {
        let parent = f.rel.parent().unwrap_or(Path::new(""));
        let (path, kind) = if let Some(hf) = hf_entry(&f.rel) {
            (hf, TierKind::HfCache)
        } else {
            // A diffusers pipeline keeps its parts in subdirectories under model_index.json.
            let dir = parent
                .ancestors()
                .take_while(|a| !a.as_os_str().is_empty())
                .find(|a| tree.has(a, "model_index.json"))
                .unwrap_or(parent);
            if is_blocked(dir) {
                (f.rel.clone(), TierKind::File)
            } else {
                (dir.to_owned(), TierKind::Models)
            }
        };
        let u = units.entry(path.clone()).or_insert_with(|| Unit {
            kind,
            models: BTreeSet::from([path]),
            weights: Vec::new(),
        });
        u.weights.push(f);
    }
    for (path, u) in &mut units {
        if matches!(u.kind, TierKind::Models | TierKind::File) && is_adapter(tree, path, u) {
            u.kind = TierKind::Adapter;
        }
    }

    // 2. Model directories sharing a parent collapse into it, repeatedly.
    loop {
        let mut by_parent: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for (path, u) in &units {
            if u.kind == TierKind::Models
                && let Some(p) = path.parent()
            {
                by_parent
                    .entry(p.to_owned())
                    .or_default()
                    .push(path.clone());
            }
        }
        let target = by_parent.into_iter().find(|(p, children)| {
            children.len() >= 2 && !is_blocked(p) && hf_entry(&p.join("x")).is_none()
        });
        let Some((parent, _)) = target else {
            break;
        };
        let absorbed: Vec<PathBuf> = units
            .iter()
            .filter(|(path, u)| u.kind == TierKind::Models && path.starts_with(&parent))
            .map(|(path, _)| path.clone())
            .collect();
        let mut merged = Unit {
            kind: TierKind::Models,
            models: BTreeSet::new(),
            weights: Vec::new(),
        };
        for path in absorbed {
            let u = units.remove(&path).expect("listed above");
            merged.models.extend(u.models);
            merged.weights.extend(u.weights);
        }
        units.insert(parent, merged);
    }

    // 3. Nested units: a model directory inside another joins it; anything inside an adapter
    // joins the adapter; adapters and cache entries inside a models tier stay their own tier.
    let mut order: Vec<PathBuf> = units.keys().cloned().collect();
    order.sort_by_key(|p| p.components().count());
    let mut kept: BTreeMap<PathBuf, Unit> = BTreeMap::new();
    for path in order {
        let u = units.remove(&path).expect("key");
        let outer = kept
            .iter()
            .filter(|(k, o)| o.kind != TierKind::File && path != **k && path.starts_with(k))
            .max_by_key(|(k, _)| k.components().count())
            .map(|(k, o)| (k.clone(), o.kind));
        match outer {
            Some((k, TierKind::Adapter)) => absorb(kept.get_mut(&k).expect("key"), u),
            Some((k, TierKind::Models)) if u.kind == TierKind::Models => {
                absorb(kept.get_mut(&k).expect("key"), u);
            }
            _ => {
                kept.insert(path, u);
            }
        }
    }

    let paths: Vec<PathBuf> = kept.keys().cloned().collect();
    kept.into_iter()
        .map(|(rel, u)| {
            let under = |p: &Path| p == rel || p.starts_with(&rel);
            let mut t = TierProposal {
                inside: paths
                    .iter()
                    .filter(|p| **p != rel && rel.starts_with(p))
                    .max_by_key(|p| p.components().count())
                    .cloned(),
                kind: u.kind,
                models: u.models,
                files: 0,
                bytes: 0,
                formats: BTreeMap::new(),
                code: Vec::new(),
                rel: rel.clone(),
            };
            for f in tree.files.iter().filter(|f| under(&f.rel)) {
                t.files += 1;
                t.bytes += f.size;
                if f.format.is_weights() {
                    *t.formats.entry(f.format.name()).or_default() += 1;
                    if f.format.runs_code() {
                        t.code.push(f.rel.clone());
                    }
                }
            }
            t
        })
        .collect()
}

struct Unit<'a> {
    kind: TierKind,
    models: BTreeSet<PathBuf>,
    weights: Vec<&'a FileInfo>,
}

fn absorb<'a>(into: &mut Unit<'a>, u: Unit<'a>) {
    into.weights.extend(u.weights);
    if into.kind == TierKind::Models {
        into.models.extend(u.models);
    }
}

/// The `models--org--name` (or `datasets--`, `spaces--`) directory of a Hugging Face cache that
/// holds `rel`, if any.
pub fn hf_entry(rel: &Path) -> Option<PathBuf> {
    let mut acc = PathBuf::new();
    let parent = rel.parent()?;
    for c in parent.components() {
        acc.push(c);
        let name = c.as_os_str().to_string_lossy();
        if ["models--", "datasets--", "spaces--"]
            .iter()
            .any(|p| name.starts_with(p) && name.len() > p.len())
        {
            return Some(acc);
        }
    }
    None
}

/// Whether a unit is an adapter: `adapter_config.json` beside its weights, weights named
/// `adapter_model.*`, or "lora" in the names.
fn is_adapter(tree: &Tree, path: &Path, u: &Unit<'_>) -> bool {
    let lora = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().contains("lora"))
    };
    let named = |f: &FileInfo| {
        let name = f
            .rel
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        name.starts_with("adapter_model") || name.contains("lora")
    };
    let config_beside = u.weights.iter().any(|f| {
        f.rel
            .parent()
            .is_some_and(|d| tree.has(d, "adapter_config.json"))
    });
    let all_named = !u.weights.is_empty() && u.weights.iter().all(|f| named(f));
    config_beside || all_named || (u.kind == TierKind::Models && lora(path))
}
