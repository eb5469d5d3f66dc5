//! The integrity manifest of the sealed tiers: `seal` records every file's size and digest,
//! `verify` compares the tree with it — quickly from metadata, or fully by rehashing in
//! parallel across files and within large ones — and Hugging Face cache blobs are checked
//! against the digests they are named by.

pub mod hash;
pub mod hf;
pub mod manifest;
mod tree;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;

pub use hash::Algo;
pub use manifest::{Entry, Manifest};
pub use tree::Meta;

use crate::policy::Policy;

/// Files at least this large are also hashed in chunks, so `verify --full` can check one large
/// file on every core. Sealing a single large file costs no extra wall time: its whole-file
/// digest is sequential and keeps one core busy while the others hash the chunks.
pub const CHUNKED_FROM: u64 = 1 << 30;
pub const CHUNK_SIZE: u64 = 256 << 20;

/// Why sealing or verifying could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", crate::term::path(path))]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no integrity manifest at {}: run `warden seal` first", crate::term::path(.0))]
    NoManifest(PathBuf),
    #[error("the manifest {} is invalid: {why}", crate::term::path(path))]
    BadManifest { path: PathBuf, why: String },
    #[error("the manifest {} is not trusted: {why}", crate::term::path(path))]
    Untrusted { path: PathBuf, why: String },
    #[error("cannot seal:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Unsealable(Vec<String>),
    #[error(
        "the policy seals no tier: set seal = true on a tier (read-only tiers are sealed by default)"
    )]
    NothingSealed,
}

/// What `seal` did.
#[derive(Debug, Clone, Serialize)]
pub struct Sealed {
    pub manifest: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub digest: Algo,
    pub seconds: f64,
}

/// How to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Quick,
    Full,
}

/// A difference between the tree and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub path: String,
    pub kind: DiffKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Missing,
    Extra,
    Modified,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub mode: Mode,
    pub files: usize,
    pub bytes_hashed: u64,
    pub differences: Vec<Difference>,
    pub seconds: f64,
}

impl Verified {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// A progress display on stderr when it is a terminal.
pub struct Progress {
    done: std::sync::Arc<AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts a bar for `total` bytes, or a silent counter when stderr is not a terminal.
    pub fn start(label: &str, total: u64, show: bool) -> Self {
        let done = std::sync::Arc::new(AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = (show && std::io::stderr().is_terminal() && total > 0).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            let (d, s) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    bar.set_position(d.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
        Self { done, stop, thread }
    }

    pub fn counter(&self) -> &AtomicU64 {
        &self.done
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A unit of hashing work: a whole file, or one chunk of it.
#[derive(Clone, Copy)]
struct Job {
    file: usize,
    chunk: Option<usize>,
}

fn jobs(sizes: &[u64], chunked: impl Fn(usize) -> bool, whole: impl Fn(usize) -> bool) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        if whole(i) {
            jobs.push(Job {
                file: i,
                chunk: None,
            });
        }
        if chunked(i) {
            for c in 0..size.div_ceil(CHUNK_SIZE) as usize {
                jobs.push(Job {
                    file: i,
                    chunk: Some(c),
                });
            }
        }
    }
    // Largest work first, so the last jobs are small.
    jobs.sort_by_key(|j| {
        std::cmp::Reverse(match j.chunk {
            None => sizes[j.file],
            Some(_) => CHUNK_SIZE,
        })
    });
    jobs
}

fn chunk_of(data: &[u8], c: usize) -> &[u8] {
    let start = (c as u64 * CHUNK_SIZE) as usize;
    let end = (start as u64 + CHUNK_SIZE).min(data.len() as u64) as usize;
    &data[start.min(data.len())..end]
}

/// Seals the policy's sealed tiers: hashes every file and writes the manifest.
pub fn seal(policy: &Policy, algo: Algo, progress: bool) -> Result<Sealed, Error> {
    let started = std::time::Instant::now();
    let tiers: Vec<_> = policy.tiers.iter().filter(|t| t.seal).collect();
    if tiers.is_empty() {
        return Err(Error::NothingSealed);
    }
    let tree = tree::collect(policy);
    let mut problems: Vec<String> = tree
        .problems
        .iter()
        .map(|(p, why)| format!("{}: {why}", crate::term::escape(p)))
        .collect();
    if !problems.is_empty() {
        return Err(Error::Unsealable(problems));
    }
    let files: Vec<(&String, &Meta)> = tree.files.iter().collect();
    let sizes: Vec<u64> = files.iter().map(|(_, m)| m.size).collect();
    let total: u64 = sizes.iter().sum();
    let bar = Progress::start("sealing", total, progress);
    let chunked = |i: usize| algo == Algo::Sha256 && sizes[i] >= CHUNKED_FROM;
    let work = jobs(&sizes, chunked, |_| true);
    let maps: Vec<std::sync::OnceLock<Result<crate::scan::Mapped, String>>> = (0..files.len())
        .map(|_| std::sync::OnceLock::new())
        .collect();
    let open = |i: usize| {
        maps[i].get_or_init(|| {
            let p = policy.root.join(files[i].0);
            let (f, m) = hash::open_map(&p).map_err(|e| e.to_string())?;
            let now = Meta::of(&f.metadata().map_err(|e| e.to_string())?);
            if now != *files[i].1 {
                return Err("changed while being sealed".into());
            }
            Ok(m)
        })
    };
    let results: Vec<(Job, Result<String, String>)> = work
        .par_iter()
        .map(|j| {
            let r = match open(j.file) {
                Ok(m) => {
                    let data: &[u8] = m;
                    let counter = j.chunk.is_none().then(|| bar.counter());
                    Ok(match j.chunk {
                        None => hash::digest_mapped(algo, data, counter),
                        Some(c) => hash::digest_mapped(algo, chunk_of(data, c), None),
                    })
                }
                Err(e) => Err(e.clone()),
            };
            (*j, r)
        })
        .collect();
    drop(bar);
    let mut whole: Vec<Option<String>> = vec![None; files.len()];
    let mut chunks: Vec<Vec<String>> = files
        .iter()
        .map(|(_, m)| {
            if algo == Algo::Sha256 && m.size >= CHUNKED_FROM {
                vec![String::new(); m.size.div_ceil(CHUNK_SIZE) as usize]
            } else {
                Vec::new()
            }
        })
        .collect();
    for (j, r) in results {
        match r {
            Ok(d) => match j.chunk {
                None => whole[j.file] = Some(d),
                Some(c) => chunks[j.file][c] = d,
            },
            Err(e) => problems.push(format!("{}: {e}", crate::term::escape(files[j.file].0))),
        }
    }
    problems.sort();
    problems.dedup();
    // Hugging Face blobs must match the digest they are named by.
    for (i, (rel, _)) in files.iter().enumerate() {
        if let (Some(expected), Some(d)) = (hf::blob_name(rel), &whole[i])
            && let Some(why) = hf::check_name(&policy.root.join(rel), &expected, algo, d)
        {
            problems.push(format!("{}: {why}", crate::term::escape(rel)));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Unsealable(problems));
    }
    let entries = files
        .iter()
        .enumerate()
        .map(|(i, (rel, m))| Entry {
            path: (*rel).clone(),
            size: m.size,
            digest: whole[i].clone().unwrap_or_default(),
            chunks: std::mem::take(&mut chunks[i]),
            mtime: m.mtime,
            ctime: m.ctime,
            ino: m.ino,
        })
        .collect();
    let manifest = Manifest {
        format: manifest::FORMAT,
        digest: algo,
        chunk_size: CHUNK_SIZE,
        sealed_at: now_secs(),
        root: policy.root.clone(),
        tiers: tiers
            .iter()
            .map(|t| t.rel.to_string_lossy().into_owned())
            .collect(),
        files: entries,
    };
    let path = manifest.save(&policy.state_dir)?;
    Ok(Sealed {
        manifest: path,
        files: files.len(),
        bytes: total,
        digest: algo,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Verifies the sealed tiers against the manifest.
pub fn verify(policy: &Policy, mode: Mode, progress: bool) -> Result<Verified, Error> {
    let m = Manifest::load(&policy.state_dir)?;
    Ok(verify_against(policy, &m, mode, progress))
}

/// Verifies the tree against a loaded manifest.
pub fn verify_against(policy: &Policy, m: &Manifest, mode: Mode, progress: bool) -> Verified {
    let started = std::time::Instant::now();
    let tree = tree::collect(policy);
    let mut diffs = Vec::new();
    let by_path: HashMap<&str, &Entry> = m.files.iter().map(|e| (e.path.as_str(), e)).collect();
    for (p, why) in &tree.problems {
        diffs.push(Difference {
            path: p.clone(),
            kind: DiffKind::Extra,
            detail: why.clone(),
        });
    }
    for p in tree.files.keys() {
        if !by_path.contains_key(p.as_str()) {
            diffs.push(Difference {
                path: p.clone(),
                kind: DiffKind::Extra,
                detail: "not in the manifest".into(),
            });
        }
    }
    let mut present = Vec::new();
    for e in &m.files {
        match tree.files.get(&e.path) {
            None => diffs.push(Difference {
                path: e.path.clone(),
                kind: DiffKind::Missing,
                detail: "in the manifest, not on disk".into(),
            }),
            Some(now) if now.size != e.size => diffs.push(Difference {
                path: e.path.clone(),
                kind: DiffKind::Modified,
                detail: format!("size {} (sealed: {})", now.size, e.size),
            }),
            Some(now) => present.push((e, now)),
        }
    }
    let mut hashed = 0;
    match mode {
        Mode::Quick => {
            for (e, now) in present {
                let mut what = Vec::new();
                if now.mtime != e.mtime {
                    what.push("mtime");
                }
                if now.ctime != e.ctime {
                    what.push("ctime");
                }
                if now.ino != e.ino {
                    what.push("inode");
                }
                if !what.is_empty() {
                    diffs.push(Difference {
                        path: e.path.clone(),
                        kind: DiffKind::Modified,
                        detail: format!(
                            "{} changed since sealing (`warden verify --full` checks the content)",
                            what.join(", ")
                        ),
                    });
                }
            }
        }
        Mode::Full => {
            let total: u64 = present.iter().map(|(e, _)| e.size).sum();
            hashed = total;
            let bar = Progress::start("verifying", total, progress);
            let sizes: Vec<u64> = present.iter().map(|(e, _)| e.size).collect();
            let usable = |i: usize| {
                let e = present[i].0;
                m.digest == Algo::Sha256
                    && !e.chunks.is_empty()
                    && e.chunks.len() as u64 == e.size.div_ceil(m.chunk_size.max(1))
                    && m.chunk_size == CHUNK_SIZE
            };
            let work = jobs(&sizes, usable, |i| !usable(i));
            let maps: Vec<std::sync::OnceLock<Result<crate::scan::Mapped, String>>> = (0..present
                .len())
                .map(|_| std::sync::OnceLock::new())
                .collect();
            let bad: Vec<(usize, String)> = work
                .par_iter()
                .filter_map(|j| {
                    let e = present[j.file].0;
                    let mapped = maps[j.file].get_or_init(|| {
                        hash::open_map(&policy.root.join(&e.path))
                            .map(|(_, m)| m)
                            .map_err(|err| format!("cannot read: {err}"))
                    });
                    let data: &[u8] = match mapped {
                        Ok(d) => d,
                        Err(err) => return Some((j.file, err.clone())),
                    };
                    if data.len() as u64 != e.size {
                        return Some((j.file, format!("size {} (sealed: {})", data.len(), e.size)));
                    }
                    match j.chunk {
                        None => {
                            let d = hash::digest_mapped(m.digest, data, Some(bar.counter()));
                            (d != e.digest)
                                .then(|| (j.file, "content differs from the sealed digest".into()))
                        }
                        Some(c) => {
                            let piece = chunk_of(data, c);
                            let d = hash::digest_mapped(Algo::Sha256, piece, None);
                            bar.counter()
                                .fetch_add(piece.len() as u64, Ordering::Relaxed);
                            (d != e.chunks[c]).then(|| {
                                (
                                    j.file,
                                    format!(
                                        "content differs from the sealed digest (bytes {}..)",
                                        c as u64 * CHUNK_SIZE
                                    ),
                                )
                            })
                        }
                    }
                })
                .collect();
            drop(bar);
            let mut seen = std::collections::HashSet::new();
            for (i, why) in bad {
                if seen.insert(i) {
                    diffs.push(Difference {
                        path: present[i].0.path.clone(),
                        kind: DiffKind::Modified,
                        detail: why,
                    });
                }
            }
            // Hugging Face blobs against their names (covered by the digest when sha256).
            if m.digest != Algo::Sha256 {
                for (e, _) in &present {
                    if let Some(expected) = hf::blob_name(&e.path)
                        && let Some(why) = hf::verify_file(&policy.root.join(&e.path), &expected)
                    {
                        diffs.push(Difference {
                            path: e.path.clone(),
                            kind: DiffKind::Modified,
                            detail: why,
                        });
                    }
                }
            }
        }
    }
    diffs.sort_by(|a, b| a.path.cmp(&b.path));
    diffs.dedup_by(|a, b| a.path == b.path && a.kind == b.kind);
    Verified {
        mode,
        files: m.files.len(),
        bytes_hashed: hashed,
        differences: diffs,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The files of the sealed tiers now (relative paths), and the entries that cannot be sealed.
pub fn sealed_files(policy: &Policy) -> (Vec<String>, Vec<(String, String)>) {
    let t = tree::collect(policy);
    (t.files.into_keys().collect(), t.problems)
}

/// `run`'s check: verify the sealed tiers before every start.
pub struct VerifyCheck {
    pub mode: Mode,
}

impl crate::supervise::PreStart for VerifyCheck {
    fn name(&self) -> &str {
        match self.mode {
            Mode::Quick => "integrity (quick)",
            Mode::Full => "integrity (full)",
        }
    }

    fn check(&self, policy: &Policy) -> Result<(), String> {
        let v = match verify(policy, self.mode, true) {
            Ok(v) => v,
            Err(Error::NoManifest(p)) => {
                // First start: record the tiers as they are (trust on first use); the scan
                // that follows judges them, and every later start is verified against this.
                eprintln!(
                    "warden: warning: no integrity manifest at {}: sealing the tiers as they are now (run `warden seal` to record them deliberately)",
                    crate::term::path(&p)
                );
                let s = seal(policy, policy.integrity.digest.into(), false)
                    .map_err(|e| e.to_string())?;
                eprintln!(
                    "warden: sealed {} files into {}",
                    s.files,
                    crate::term::path(&s.manifest)
                );
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        if v.is_clean() {
            return Ok(());
        }
        let mut s = format!(
            "{} difference{} from the manifest:",
            v.differences.len(),
            if v.differences.len() == 1 { "" } else { "s" }
        );
        for d in v.differences.iter().take(20) {
            s.push_str(&format!(
                "\n    {:?} {}: {}",
                d.kind,
                crate::term::escape(&d.path),
                crate::term::escape(&d.detail)
            ));
        }
        if v.differences.len() > 20 {
            s.push_str(&format!("\n    ... and {} more", v.differences.len() - 20));
        }
        s.push_str("\n    (`warden verify` lists them; `warden seal` records an intended change)");
        Err(s)
    }
}
