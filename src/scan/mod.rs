//! Model files: content-based format detection, and a static scanner for code hidden in them.
//!
//! Every file's format is decided from its bytes, never its name. Pickles (raw, in torch zip
//! and legacy checkpoints, in numpy object arrays) run through an emulated pickle machine and
//! are judged by the allowlist of the loader that will read them; safetensors and GGUF headers
//! are validated against the file; archives are read leniently and descended into within
//! limits. Anything that cannot be checked is a finding: the scanner fails closed.

pub mod allow;
mod content;
pub mod detect;
pub mod finding;
pub mod gguf;
pub mod npy;
pub mod pickle;
pub mod preflight;
pub mod render;
pub mod safetensors;
pub mod zip;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

pub use detect::{Format, Kind, detect_bytes, detect_path};
pub use finding::{Finding, Severity};

/// Version of the scanner's rules: cached verdicts of another version are not trusted.
pub const RULES_VERSION: u32 = 1;

/// Bounds on archive scanning.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Archives nested deeper than this are not opened (a finding).
    pub max_depth: u32,
    /// The largest member decompressed into memory.
    pub max_member: u64,
    /// Decompressed bytes allowed per file, all members together.
    pub max_total: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 4,
            max_member: 1 << 30,
            max_total: 8 << 30,
        }
    }
}

/// What was found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    /// The format recognised from the content (`None` when the file could not be read).
    pub format: Option<String>,
    pub size: u64,
    pub findings: Vec<Finding>,
    /// Why the file could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileReport {
    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.error.is_none()
    }
}

/// The result of scanning paths.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
}

impl Report {
    pub fn findings(&self) -> usize {
        self.files.iter().map(|f| f.findings.len()).sum()
    }

    pub fn errors(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }

    pub fn count(&self, s: Severity) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.findings)
            .filter(|f| f.severity == s)
            .count()
    }

    /// 0 clean, 1 findings, 2 errors only: a finding wins over an error.
    pub fn exit_code(&self) -> u8 {
        if self.findings() > 0 {
            1
        } else if self.errors() > 0 {
            2
        } else {
            0
        }
    }
}

/// Scans content held in memory; returns its format and the findings.
pub fn scan_bytes(data: &[u8], limits: &Limits) -> (Format, Vec<Finding>) {
    let mut cx = content::Ctx::new(limits);
    let f = cx.file(data);
    (f, cx.findings)
}

/// Scans a file's mapped content.
fn scan_mapped(m: &Mapped, limits: &Limits) -> (Format, Vec<Finding>) {
    let mut cx = content::Ctx::new(limits);
    if let Mapped::Map(map) = m {
        cx = cx.mapped(map);
    }
    let f = cx.file(m);
    (f, cx.findings)
}

/// Scans one regular file (mapped into memory, never read whole into the heap).
pub fn scan_file(path: &Path, limits: &Limits) -> FileReport {
    let mut rep = FileReport {
        path: path.to_owned(),
        format: None,
        size: 0,
        findings: Vec::new(),
        error: None,
    };
    match map_file(path) {
        Ok(m) => {
            rep.size = m.len() as u64;
            let (f, findings) = scan_mapped(&m, limits);
            rep.format = Some(f.to_string());
            rep.findings = findings;
        }
        Err(e) => rep.error = Some(format!("cannot read {}: {e}", crate::term::path(path))),
    }
    rep
}

/// A file's content: mapped, or empty.
pub enum Mapped {
    Map(memmap2::Mmap),
    Empty,
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Map(m) => m,
            Self::Empty => &[],
        }
    }
}

/// Opens `path` without following a final symlink, and maps it read-only.
pub fn map_file(path: &Path) -> io::Result<Mapped> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    map_open(&file)
}

/// Maps an open regular file.
pub fn map_open(file: &File) -> io::Result<Mapped> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() == 0 {
        return Ok(Mapped::Empty);
    }
    // A file truncated underneath the mapping raises SIGBUS, which ends the scan (never a clean
    // result).
    let m = crate::sys::mem::map_readonly(file)?;
    let _ = m.advise(memmap2::Advice::Sequential);
    Ok(Mapped::Map(m))
}

/// A file found by a walk, or a problem with an entry.
enum Walked {
    File(PathBuf),
    Finding(FileReport),
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Walked>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.push(Walked::Finding(error_report(dir, &e)));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let Ok(ty) = e.file_type() else { continue };
        if ty.is_dir() {
            walk(root, &p, out);
        } else if ty.is_file() {
            out.push(Walked::File(p));
        } else if ty.is_symlink() {
            let inside = p
                .canonicalize()
                .ok()
                .zip(root.canonicalize().ok())
                .map(|(t, r)| t.starts_with(r));
            if inside != Some(true) {
                let target = std::fs::read_link(&p)
                    .map(|t| crate::term::path(&t))
                    .unwrap_or_default();
                let (sev, msg) = match inside {
                    None => (Severity::Low, format!("dangling symlink to {target}")),
                    _ => (
                        Severity::Medium,
                        format!("symlink to {target}, outside the scanned tree: not scanned"),
                    ),
                };
                out.push(Walked::Finding(FileReport {
                    path: p,
                    format: None,
                    size: 0,
                    findings: vec![Finding::new(sev, "walk/symlink", msg)],
                    error: None,
                }));
            }
        }
    }
}

fn error_report(p: &Path, e: &io::Error) -> FileReport {
    FileReport {
        path: p.to_owned(),
        format: None,
        size: 0,
        findings: Vec::new(),
        error: Some(format!("cannot read {}: {e}", crate::term::path(p))),
    }
}

/// Scans files and directories (recursively, every file by its content), in parallel.
pub fn scan_paths(paths: &[PathBuf], limits: &Limits) -> Report {
    let mut items = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, p, &mut items),
            Ok(m) if m.is_file() => items.push(Walked::File(p.clone())),
            Ok(_) => items.push(Walked::Finding(error_report(
                p,
                &io::Error::other("not a regular file or directory"),
            ))),
            Err(e) => items.push(Walked::Finding(error_report(p, &e))),
        }
    }
    let files: Vec<FileReport> = items
        .into_par_iter()
        .map(|w| match w {
            Walked::File(p) => scan_file_following(&p, limits),
            Walked::Finding(r) => r,
        })
        .collect();
    Report { files }
}

/// Scans a path named by the user (a final symlink is followed) or found by a walk.
fn scan_file_following(path: &Path, limits: &Limits) -> FileReport {
    match File::open(path).and_then(|f| map_open(&f)) {
        Ok(m) => {
            let (f, findings) = scan_mapped(&m, limits);
            FileReport {
                path: path.to_owned(),
                format: Some(f.to_string()),
                size: m.len() as u64,
                findings,
                error: None,
            }
        }
        Err(e) => error_report(path, &e),
    }
}

#[cfg(test)]
mod tests;
