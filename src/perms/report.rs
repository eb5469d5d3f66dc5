//! What a hardening run did or would do: changes, findings and failures, rendered as a text
//! diff for people or as JSON.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::plan::{State, Target};
use super::zone::Zones;
use crate::sys::fs::Kind;

/// How far one change got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Dry run: nothing done.
    Planned,
    Applied,
    /// The mode was applied; owner and group need root.
    Partial,
    /// Nothing applied: it needs root.
    NeedsRoot,
    /// A system call failed (listed in the failures).
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Applied => "applied",
            Status::Partial => "partial",
            Status::NeedsRoot => "needs-root",
            Status::Failed => "failed",
        }
    }
}

/// One entry whose owner, group or mode changes (or would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    /// Index of the zone in [`Report::zones`].
    pub zone: usize,
    pub kind: Kind,
    /// `None` when warden creates the directory.
    pub before: Option<State>,
    pub after: Target,
    /// Some part needs more privilege than the caller has.
    pub needs_root: bool,
    pub status: Status,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    SymlinkOutside,
    HardLink,
    HardLinkSkipped,
    Special,
    Untraversable,
    NotReached,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::SymlinkOutside => "symlink-outside",
            FindingKind::HardLink => "hard-link",
            FindingKind::HardLinkSkipped => "hard-link-skipped",
            FindingKind::Special => "special-file",
            FindingKind::Untraversable => "untraversable",
            FindingKind::NotReached => "not-reached",
        }
    }

    /// True when the finding means part of the policy was not applied.
    pub fn blocking(self) -> bool {
        matches!(self, FindingKind::HardLinkSkipped | FindingKind::NotReached)
    }
}

/// Something to report about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    pub kind: FindingKind,
    pub message: String,
}

/// A system call that failed, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub path: PathBuf,
    pub op: &'static str,
    pub error: String,
}

/// The result of a hardening run.
#[derive(Debug, Clone)]
pub struct Report {
    pub dry_run: bool,
    /// Ran with root's privileges.
    pub privileged: bool,
    pub root: PathBuf,
    /// Zone labels, as [`Change::zone`] indexes them.
    pub zones: Vec<String>,
    /// Entries examined.
    pub checked: u64,
    /// Sorted by path.
    pub changes: Vec<Change>,
    pub findings: Vec<Finding>,
    pub failures: Vec<Failure>,
}

/// Counts of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub changes: usize,
    pub applied: usize,
    /// Partly applied (the mode, or the creation); the rest needs root. Also in `needs_root`.
    pub partial: usize,
    pub needs_root: usize,
    pub failed: usize,
    /// Changes not (fully) applied, failures and blocking findings: non-zero means exit 1.
    pub not_applied: usize,
}

impl Report {
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            changes: self.changes.len(),
            ..Counts::default()
        };
        for ch in &self.changes {
            match ch.status {
                Status::Applied => c.applied += 1,
                Status::Partial => {
                    c.partial += 1;
                    c.needs_root += 1;
                }
                Status::NeedsRoot => c.needs_root += 1,
                Status::Planned if ch.needs_root => c.needs_root += 1,
                Status::Failed => c.failed += 1,
                Status::Planned => {}
            }
        }
        let walk_failures = self.failures.len().saturating_sub(c.failed);
        let blocking = self.findings.iter().filter(|f| f.kind.blocking()).count();
        c.not_applied = if self.dry_run {
            walk_failures + blocking
        } else {
            c.needs_root + c.failed + walk_failures + blocking
        };
        c
    }

    /// A path as shown to people: relative to the deployment when inside it.
    pub fn show(&self, p: &Path) -> String {
        crate::term::path(shown(&self.root, p))
    }

    /// The report as text lines: changes (at most `limit` per zone unless `verbose`), findings
    /// and failures.
    pub fn text_lines(&self, verbose: bool, limit: usize, names: &Names) -> Vec<String> {
        let mut out = Vec::new();
        let mut shown_per_zone = vec![0usize; self.zones.len()];
        for c in &self.changes {
            let n = &mut shown_per_zone[c.zone];
            *n += 1;
            if verbose || *n <= limit {
                out.push(self.change_line(c, names));
            }
        }
        if !verbose {
            for (z, n) in shown_per_zone.iter().enumerate() {
                if *n > limit {
                    out.push(format!(
                        "... and {} more changes under {} (-v lists every change)",
                        n - limit,
                        crate::term::escape(&self.zones[z])
                    ));
                }
            }
        }
        let cut = |n: usize| if verbose { n } else { n.min(limit) };
        for f in &self.findings[..cut(self.findings.len())] {
            out.push(format!(
                "warning: {}: {}",
                self.show(&f.path),
                crate::term::escape(&f.message)
            ));
        }
        if self.findings.len() > cut(self.findings.len()) {
            out.push(format!(
                "... and {} more warnings (-v lists them)",
                self.findings.len() - limit
            ));
        }
        for f in &self.failures[..cut(self.failures.len())] {
            out.push(format!(
                "error: {}: {}: {}",
                self.show(&f.path),
                f.op,
                f.error
            ));
        }
        if self.failures.len() > cut(self.failures.len()) {
            out.push(format!(
                "... and {} more errors (-v lists them)",
                self.failures.len() - limit
            ));
        }
        out
    }

    /// `path  owner:group mode -> owner:group mode`, with a note when not simply applied.
    pub fn change_line(&self, c: &Change, names: &Names) -> String {
        let before = match &c.before {
            Some(s) => format!(
                "{}:{} {:04o}",
                names.user(s.uid),
                names.group(s.gid),
                s.mode
            ),
            None => "(new directory)".to_owned(),
        };
        let after = format!("{}:{} {:04o}", c.after.owner, c.after.group, c.after.mode);
        let note = match c.status {
            Status::Planned if c.needs_root => "  (needs root)",
            Status::Partial if c.before.is_none() => "  (created; owner needs root)",
            Status::Partial => "  (mode applied; owner needs root)",
            Status::NeedsRoot => "  (needs root)",
            Status::Failed => "  (failed)",
            _ => "",
        };
        format!("{}  {before} -> {after}{note}", self.show(&c.path))
    }

    /// The report as JSON: every change, finding and failure.
    pub fn to_json(&self, names: &Names) -> Value {
        let state = |s: &State| {
            json!({
                "owner": names.user(s.uid), "uid": s.uid,
                "group": names.group(s.gid), "gid": s.gid,
                "mode": format!("{:04o}", s.mode),
            })
        };
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|c| {
                json!({
                    "path": c.path.to_string_lossy(),
                    "kind": c.kind.as_str(),
                    "before": c.before.as_ref().map(state),
                    "after": {
                        "owner": &*c.after.owner, "uid": c.after.uid,
                        "group": &*c.after.group, "gid": c.after.gid,
                        "mode": format!("{:04o}", c.after.mode),
                    },
                    "needs_root": c.needs_root,
                    "status": c.status.as_str(),
                })
            })
            .collect();
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "path": f.path.to_string_lossy(), "kind": f.kind.as_str(),
                    "message": f.message, "blocking": f.kind.blocking(),
                })
            })
            .collect();
        let failures: Vec<Value> = self
            .failures
            .iter()
            .map(|f| json!({"path": f.path.to_string_lossy(), "op": f.op, "error": f.error}))
            .collect();
        let c = self.counts();
        json!({
            "dry_run": self.dry_run,
            "privileged": self.privileged,
            "root": self.root.to_string_lossy(),
            "entries_checked": self.checked,
            "changes": changes,
            "warnings": findings,
            "failures": failures,
            "summary": {
                "changes": c.changes, "applied": c.applied, "partial": c.partial, "needs_root": c.needs_root,
                "failed": c.failed, "not_applied": c.not_applied,
            },
        })
    }
}

/// `p` relative to `root` when inside it (the root itself stays absolute).
pub fn shown<'a>(root: &Path, p: &'a Path) -> &'a Path {
    match p.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel,
        _ => p,
    }
}

/// User and group names by id, looked up once each; numbers when there is no name.
#[derive(Debug, Default)]
pub struct Names {
    users: RefCell<HashMap<u32, String>>,
    groups: RefCell<HashMap<u32, String>>,
}

impl Names {
    pub fn user(&self, uid: u32) -> String {
        self.users
            .borrow_mut()
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map_or_else(|| uid.to_string(), |u| u.name)
            })
            .clone()
    }

    pub fn group(&self, gid: u32) -> String {
        self.groups
            .borrow_mut()
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map_or_else(|| gid.to_string(), |g| g.name)
            })
            .clone()
    }
}

/// Zone labels of `zones`, for [`Report::zones`].
pub fn labels(zones: &Zones) -> Vec<String> {
    zones.zones.iter().map(|z| z.label.clone()).collect()
}
