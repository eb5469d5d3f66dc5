//! Walking a deployment: every regular file with its size and detected format, without
//! following symlinks, skipping what is never the service's data (VCS, caches, virtualenvs, and
//! the private logs/tmp/state directories).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::scan::{self, Format};

/// Directory names never walked.
const SKIP_NAMES: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    ".ipynb_checkpoints",
    ".idea",
    ".vscode",
];

/// A regular file found by the walk.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// Path relative to the deployment root.
    pub rel: PathBuf,
    pub size: u64,
    pub format: Format,
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Tree {
    /// Regular files outside skipped directories.
    pub files: Vec<FileInfo>,
    /// Names of the entries of every walked directory (files, dirs and links), by directory.
    pub entries: BTreeMap<PathBuf, BTreeSet<OsString>>,
    /// Symlinks: where they are and what they point to.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Skipped directories and why.
    pub skipped: Vec<(PathBuf, &'static str)>,
    /// Virtualenvs found (skipped), relative.
    pub venvs: Vec<PathBuf>,
    /// What could not be read.
    pub errors: Vec<String>,
}

impl Tree {
    /// Whether directory `dir` (relative) has an entry called `name`.
    pub fn has(&self, dir: &Path, name: &str) -> bool {
        self.entries
            .get(dir)
            .is_some_and(|e| e.contains(std::ffi::OsStr::new(name)))
    }
}

/// Walks `root`, skipping the top-level directories named in `skip_top` (the private dirs).
pub fn walk(root: &Path, skip_top: &[&str]) -> Tree {
    let mut tree = Tree::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        let read = match std::fs::read_dir(&abs) {
            Ok(r) => r,
            Err(e) => {
                tree.errors
                    .push(format!("{}: {e}", crate::term::path(&abs)));
                continue;
            }
        };
        let mut names = BTreeSet::new();
        let mut subdirs = Vec::new();
        for entry in read {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tree.errors
                        .push(format!("{}: {e}", crate::term::path(&abs)));
                    continue;
                }
            };
            let name = entry.file_name();
            let child = rel.join(&name);
            // DirEntry::file_type does not follow symlinks.
            let Ok(ty) = entry.file_type() else {
                continue;
            };
            names.insert(name.clone());
            if ty.is_symlink() {
                let target = std::fs::read_link(entry.path()).unwrap_or_default();
                tree.links.push((child, target));
            } else if ty.is_dir() {
                subdirs.push((name, child));
            } else if ty.is_file() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                tree.files.push(FileInfo {
                    rel: child,
                    size,
                    format: Format::Unknown,
                });
            }
        }
        for (name, child) in subdirs {
            let name = name.to_string_lossy();
            if SKIP_NAMES.contains(&name.as_ref()) {
                tree.skipped.push((child, "not part of the service's data"));
            } else if rel.as_os_str().is_empty() && skip_top.contains(&name.as_ref()) {
                tree.skipped.push((child, "a private directory"));
            } else if is_env(&root.join(&child)) {
                tree.venvs.push(child.clone());
                tree.skipped.push((child, "a Python environment"));
            } else {
                stack.push(child);
            }
        }
        tree.entries.insert(rel, names);
    }
    let errors: Vec<String> = tree
        .files
        .par_iter_mut()
        .filter_map(|f| match scan::detect_path(&root.join(&f.rel)) {
            Ok(format) => {
                f.format = format;
                None
            }
            Err(e) => Some(format!("{}: {e}", crate::term::path(&f.rel))),
        })
        .collect();
    tree.errors.extend(errors);
    tree.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    tree.links.sort();
    tree
}

/// A virtualenv (`pyvenv.cfg`) or a conda environment (`conda-meta/`).
fn is_env(dir: &Path) -> bool {
    dir.join("pyvenv.cfg").is_file() || dir.join("conda-meta").is_dir()
}
