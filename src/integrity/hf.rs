//! Hugging Face cache layout: `models--ORG--NAME/blobs/` holds files named by their digest —
//! the SHA-256 for LFS files, the git blob SHA-1 for the others — so they verify without a
//! manifest.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::hash::{self, Algo};
use super::{DiffKind, Difference, Progress};

/// The digest a file is named by, when it is a cache blob (`.../blobs/<hex>`).
pub fn blob_name(rel: &str) -> Option<String> {
    let p = Path::new(rel);
    let parent = p.parent()?.file_name()?;
    let name = p.file_name()?.to_str()?;
    let hex = name
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (parent == "blobs" && hex && (name.len() == 64 || name.len() == 40)).then(|| name.to_owned())
}

/// Checks a blob against its name, given its digest as sealed with `algo`.
pub fn check_name(path: &Path, expected: &str, algo: Algo, digest: &str) -> Option<String> {
    if expected.len() == 64 && algo == Algo::Sha256 {
        return (digest != expected).then(|| mismatch("SHA-256"));
    }
    verify_file(path, expected)
}

fn mismatch(what: &str) -> String {
    format!("its {what} does not match the name it has in the Hugging Face cache")
}

/// Hashes a blob and compares it with its name.
pub fn verify_file(path: &Path, expected: &str) -> Option<String> {
    let data = match hash::open_map(path) {
        Ok((_, m)) => m,
        Err(e) => return Some(format!("cannot read: {e}")),
    };
    if expected.len() == 64 {
        (hash::digest(Algo::Sha256, &data, None) != expected).then(|| mismatch("SHA-256"))
    } else {
        (hash::git_blob_sha1(&data) != expected).then(|| mismatch("git blob id"))
    }
}

/// Verifies every blob under the given cache directories against its name.
pub fn verify_cache(dirs: &[PathBuf], progress: bool) -> super::Verified {
    let started = std::time::Instant::now();
    let mut blobs = Vec::new();
    let mut diffs = Vec::new();
    for d in dirs {
        find(d, &mut blobs, &mut diffs);
    }
    let total = blobs.iter().map(|(_, _, s)| *s).sum();
    let bar = Progress::start("verifying", total, progress);
    let bad: Vec<Difference> = blobs
        .par_iter()
        .filter_map(|(p, name, size)| {
            let r = verify_file(p, name);
            bar.counter()
                .fetch_add(*size, std::sync::atomic::Ordering::Relaxed);
            r.map(|detail| Difference {
                path: p.to_string_lossy().into_owned(),
                kind: DiffKind::Modified,
                detail,
            })
        })
        .collect();
    drop(bar);
    diffs.extend(bad);
    diffs.sort_by(|a, b| a.path.cmp(&b.path));
    super::Verified {
        mode: super::Mode::Full,
        files: blobs.len(),
        bytes_hashed: total,
        differences: diffs,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn find(dir: &Path, blobs: &mut Vec<(PathBuf, String, u64)>, diffs: &mut Vec<Difference>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        diffs.push(Difference {
            path: dir.to_string_lossy().into_owned(),
            kind: DiffKind::Missing,
            detail: "cannot list the directory".into(),
        });
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            find(&p, blobs, diffs);
        } else if ft.is_file()
            && let Some(name) = blob_name(&p.to_string_lossy())
        {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            blobs.push((p, name, size));
        }
    }
}
