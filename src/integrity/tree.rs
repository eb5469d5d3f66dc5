//! The files of the sealed tiers as they are now: relative path and the metadata a quick
//! verify compares. Symlinks and special files are problems, never followed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::policy::Policy;

/// Size, times (nanoseconds) and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub mtime: i64,
    pub ctime: i64,
    pub ino: u64,
}

impl Meta {
    pub fn of(m: &fs::Metadata) -> Self {
        Self {
            size: m.len(),
            mtime: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
            ino: m.ino(),
        }
    }
}

/// The sealed tiers' regular files, and what else was found there.
#[derive(Debug, Default)]
pub struct Tree {
    pub files: BTreeMap<String, Meta>,
    /// (relative path, what is wrong with it).
    pub problems: Vec<(String, String)>,
}

/// Walks every sealed tier (a more specific tier inside it is walked on its own, if sealed).
pub fn collect(policy: &Policy) -> Tree {
    let mut t = Tree::default();
    for tier in policy.tiers.iter().filter(|t| t.seal) {
        let rel = tier.rel.to_string_lossy().into_owned();
        match fs::symlink_metadata(&tier.path) {
            Ok(m) if m.is_dir() => walk(policy, &tier.path, &mut t),
            Ok(m) if m.file_type().is_symlink() => {
                t.problems.push((rel, "the tier is a symlink".into()))
            }
            Ok(m) if m.is_file() => {
                t.files.insert(rel, Meta::of(&m));
            }
            Ok(_) => t.problems.push((rel, "the tier is not a directory".into())),
            Err(e) => t.problems.push((rel, format!("cannot read the tier: {e}"))),
        }
    }
    t
}

fn walk(policy: &Policy, dir: &Path, t: &mut Tree) {
    let rel_of = |p: &Path| -> Result<String, String> {
        let r = p.strip_prefix(&policy.root).unwrap_or(p);
        r.to_str()
            .map(str::to_owned)
            .ok_or_else(|| r.to_string_lossy().into_owned())
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let r = rel_of(dir).unwrap_or_else(|r| r);
            t.problems
                .push((r, format!("cannot list the directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let r = rel_of(dir).unwrap_or_else(|r| r);
                t.problems
                    .push((r, format!("cannot list the directory: {e}")));
                continue;
            }
        };
        let p = entry.path();
        let rel = match rel_of(&p) {
            Ok(r) => r,
            Err(lossy) => {
                t.problems.push((lossy, "the name is not UTF-8".into()));
                continue;
            }
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                t.problems.push((rel, format!("cannot stat: {e}")));
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if policy.tiers.iter().any(|x| x.path == p) {
                continue;
            }
            walk(policy, &p, t);
        } else if ft.is_file() {
            t.files.insert(rel, Meta::of(&meta));
        } else if ft.is_symlink() {
            let target = fs::read_link(&p)
                .map(|x| crate::term::path(&x))
                .unwrap_or_default();
            t.problems.push((
                rel,
                format!("a symlink (to {target}): sealed tiers hold regular files only"),
            ));
        } else {
            t.problems.push((rel, "not a regular file".into()));
        }
    }
}
