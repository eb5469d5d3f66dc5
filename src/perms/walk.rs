//! The parallel walk: reads each directory once through its descriptor, plans every entry and
//! applies the plan through `sys`, one task per directory (and per slice of a large one).

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::plan::{self, Concern, Planned, Privilege, State};
use super::report::{Change, Failure, Finding, FindingKind, Status};
use super::zone::{Zones, normalize};
use crate::sys::fs::{self as sysfs, Kind, Meta, Names};

/// Directories with more entries than this are split into tasks of this size.
const SLICE: usize = 2048;

/// What the walk collected.
#[derive(Debug, Default)]
pub struct Acc {
    pub checked: u64,
    pub changes: Vec<Change>,
    pub findings: Vec<Finding>,
    pub failures: Vec<Failure>,
}

impl Acc {
    fn fail(&mut self, path: PathBuf, op: &'static str, e: &io::Error) {
        self.failures.push(Failure {
            path,
            op,
            error: e.to_string(),
        });
    }

    fn append(&mut self, mut other: Acc) {
        self.checked += other.checked;
        self.changes.append(&mut other.changes);
        self.findings.append(&mut other.findings);
        self.failures.append(&mut other.failures);
    }
}

/// The shared state of one walk.
pub struct Walker<'a> {
    pub zones: &'a Zones,
    pub who: &'a Privilege,
    pub dry_run: bool,
    nested: HashMap<PathBuf, Vec<(CString, usize)>>,
    reached: Vec<AtomicBool>,
    out: Mutex<Acc>,
    progress: Option<&'a AtomicU64>,
}

fn join(dir: &Path, name: &CStr) -> PathBuf {
    dir.join(OsStr::from_bytes(name.to_bytes()))
}

impl<'a> Walker<'a> {
    pub fn new(
        zones: &'a Zones,
        who: &'a Privilege,
        dry_run: bool,
        progress: Option<&'a AtomicU64>,
    ) -> Self {
        Self {
            zones,
            who,
            dry_run,
            nested: zones.nested(),
            reached: zones.zones.iter().map(|_| AtomicBool::new(false)).collect(),
            out: Mutex::new(Acc::default()),
            progress,
        }
    }

    /// Everything collected, and the zones the walk never reached.
    pub fn finish(self) -> (Acc, Vec<usize>) {
        let missed = self
            .reached
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.load(Ordering::Relaxed))
            .map(|(i, _)| i)
            .collect();
        (
            self.out.into_inner().unwrap_or_else(|e| e.into_inner()),
            missed,
        )
    }

    fn merge(&self, acc: Acc) {
        if let Some(p) = self.progress {
            p.fetch_add(acc.checked, Ordering::Relaxed);
        }
        self.out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(acc);
    }

    /// Hardens the zone root `name` in `parent` (observed as `meta`, or missing), then the tree
    /// below it.
    pub fn start<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        parent: Arc<OwnedFd>,
        parent_path: PathBuf,
        name: CString,
        zone: usize,
        meta: Option<Meta>,
    ) {
        self.reached[zone].store(true, Ordering::Relaxed);
        let mut acc = Acc::default();
        let descend = match meta {
            Some(m) => self.visit(&mut acc, parent.as_fd(), &parent_path, &name, zone, Some(m)),
            None => {
                self.create(&mut acc, parent.as_fd(), &parent_path, &name, zone);
                false
            }
        };
        self.merge(acc);
        if descend {
            let path = join(&parent_path, &name);
            s.spawn(move |s| self.walk_dir(s, parent, name, path, zone));
        }
    }

    /// Creates a missing private directory (or plans to), and records it as a change.
    fn create(&self, acc: &mut Acc, dir: BorrowedFd<'_>, dir_path: &Path, name: &CStr, z: usize) {
        let path = join(dir_path, name);
        let zone = &self.zones.zones[z];
        acc.checked += 1;
        let fresh = Meta {
            kind: Kind::Dir,
            uid: self.who.euid,
            gid: self.who.egid,
            mode: 0o700,
            nlink: 2,
        };
        if self.dry_run {
            let Some(target) = plan::desired(zone, &fresh) else {
                return;
            };
            let planned = Planned {
                chown: target.uid != Some(fresh.uid) || target.gid != Some(fresh.gid),
                chmod: false,
                target,
            };
            acc.changes.push(Change {
                path,
                zone: z,
                kind: Kind::Dir,
                before: None,
                needs_root: plan::needs_root(&fresh, &planned, self.who),
                after: planned.target,
                status: Status::Planned,
            });
            return;
        }
        if let Err(e) = sysfs::mkdir_at(dir, name, 0o700) {
            acc.fail(path, "create directory", &e);
            return;
        }
        let meta = match sysfs::stat_at(dir, name) {
            Ok(m) => m,
            Err(e) => {
                acc.fail(path, "stat", &e);
                return;
            }
        };
        let (planned, _) = plan::plan_entry(zone, &meta);
        let (target, status, needs_root) = match planned {
            Some(p) => {
                let status = match self.apply(acc, dir, name, &meta, &p, &path) {
                    // The directory itself was created.
                    Status::NeedsRoot => Status::Partial,
                    s => s,
                };
                (
                    p.target.clone(),
                    status,
                    plan::needs_root(&meta, &p, self.who),
                )
            }
            None => match plan::desired(zone, &meta) {
                Some(t) => (t, Status::Applied, false),
                None => return,
            },
        };
        acc.changes.push(Change {
            path,
            zone: z,
            kind: Kind::Dir,
            before: None,
            after: target,
            needs_root,
            status,
        });
    }

    fn walk_dir<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        parent: Arc<OwnedFd>,
        name: CString,
        path: PathBuf,
        zone: usize,
    ) {
        let opened = sysfs::open_dir_at(parent.as_fd(), &name);
        drop(parent);
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) => return self.fail_one(path, "open directory", &e),
        };
        let names = match sysfs::read_names(fd.as_fd()) {
            Ok(n) => n,
            Err(e) => return self.fail_one(path, "read directory", &e),
        };
        let fd = Arc::new(fd);
        if names.len() <= SLICE {
            self.visit_range(s, &fd, &path, &names, 0..names.len(), zone);
            return;
        }
        let names = Arc::new(names);
        let path = Arc::new(path);
        for start in (0..names.len()).step_by(SLICE) {
            let range = start..(start + SLICE).min(names.len());
            let (fd, names, path) = (Arc::clone(&fd), Arc::clone(&names), Arc::clone(&path));
            s.spawn(move |s| self.visit_range(s, &fd, &path, &names, range, zone));
        }
    }

    fn fail_one(&self, path: PathBuf, op: &'static str, e: &io::Error) {
        let mut acc = Acc::default();
        acc.fail(path, op, e);
        self.merge(acc);
    }

    fn visit_range<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        fd: &Arc<OwnedFd>,
        path: &Path,
        names: &Names,
        range: Range<usize>,
        zone: usize,
    ) {
        let nested = self.nested.get(path);
        let mut acc = Acc::default();
        for i in range {
            let name = names.get(i);
            let z = nested
                .and_then(|v| v.iter().find(|(n, _)| n.as_c_str() == name))
                .map_or(zone, |(_, z)| {
                    self.reached[*z].store(true, Ordering::Relaxed);
                    *z
                });
            if self.visit(&mut acc, fd.as_fd(), path, name, z, None) {
                let child = join(path, name);
                let (fd, name) = (Arc::clone(fd), name.to_owned());
                s.spawn(move |s| self.walk_dir(s, fd, name, child, z));
            }
        }
        self.merge(acc);
    }

    /// Plans and applies one entry; returns true for a directory to descend into.
    fn visit(
        &self,
        acc: &mut Acc,
        dir: BorrowedFd<'_>,
        dir_path: &Path,
        name: &CStr,
        z: usize,
        known: Option<Meta>,
    ) -> bool {
        acc.checked += 1;
        let meta = match known.map_or_else(|| sysfs::stat_at(dir, name), Ok) {
            Ok(m) => m,
            Err(e) => {
                acc.fail(join(dir_path, name), "stat", &e);
                return false;
            }
        };
        let zone = &self.zones.zones[z];
        if meta.kind == Kind::Symlink {
            self.check_symlink(acc, dir, dir_path, name);
            return false;
        }
        let (planned, concern) = plan::plan_entry(zone, &meta);
        if let Some(c) = concern {
            acc.findings
                .push(concern_finding(join(dir_path, name), c, &zone.label));
        }
        if let Some(p) = planned {
            let path = join(dir_path, name);
            let status = self.apply(acc, dir, name, &meta, &p, &path);
            acc.changes.push(Change {
                path,
                zone: z,
                kind: meta.kind,
                before: Some(State::from(&meta)),
                needs_root: plan::needs_root(&meta, &p, self.who),
                after: p.target,
                status,
            });
        }
        meta.kind == Kind::Dir
    }

    /// Applies what the caller may: owner and group first (a chown can clear mode bits), then
    /// the mode. Nothing is called for a part that is already right.
    fn apply(
        &self,
        acc: &mut Acc,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        p: &Planned,
        path: &Path,
    ) -> Status {
        if self.dry_run {
            return Status::Planned;
        }
        let (may_chown, may_chmod) = plan::permitted(meta, p, self.who);
        let mut done = 0;
        let mut owner_ok = !p.chown;
        let resolved = p.target.uid.is_some() && p.target.gid.is_some();
        if p.chown && may_chown && resolved {
            let uid = p.target.uid.filter(|u| *u != meta.uid);
            let gid = p.target.gid.filter(|g| *g != meta.gid);
            if let Err(e) = sysfs::chown_at(dir, name, uid, gid) {
                acc.fail(path.to_owned(), "chown", &e);
                return Status::Failed;
            }
            owner_ok = true;
            done += 1;
        }
        let mut mode_ok = !p.chmod;
        if p.chmod && may_chmod {
            if let Err(e) = sysfs::chmod_at(dir, name, p.target.mode) {
                acc.fail(path.to_owned(), "chmod", &e);
                return Status::Failed;
            }
            mode_ok = true;
            done += 1;
        }
        match (owner_ok && mode_ok, done) {
            (true, _) => Status::Applied,
            (false, 0) => Status::NeedsRoot,
            (false, _) => Status::Partial,
        }
    }

    /// Reports a symlink that leads outside the deployment; never follows or changes it.
    fn check_symlink(&self, acc: &mut Acc, dir: BorrowedFd<'_>, dir_path: &Path, name: &CStr) {
        let path = join(dir_path, name);
        let target = match sysfs::read_link_at(dir, name) {
            Ok(t) => t,
            Err(e) => return acc.fail(path, "read symlink", &e),
        };
        let lexical = normalize(dir_path, &target);
        let outside = !self.zones.inside_deployment(&lexical)
            || std::fs::canonicalize(&path).is_ok_and(|real| !self.zones.inside_deployment(&real));
        if outside {
            acc.findings.push(Finding {
                path,
                kind: FindingKind::SymlinkOutside,
                message: format!(
                    "symlink to {}, outside the deployment: not followed, left unchanged",
                    target.display()
                ),
            });
        }
    }
}

fn concern_finding(path: PathBuf, c: Concern, zone: &str) -> Finding {
    let (kind, message) = match c {
        Concern::HardLinked { nlink } => (
            FindingKind::HardLink,
            format!(
                "hard-linked ({nlink} names): the file may be reachable from outside the read-only \
                 tier {zone}, and its new owner and mode apply to every name"
            ),
        ),
        Concern::HardLinkedSkipped { nlink } => (
            FindingKind::HardLinkSkipped,
            format!(
                "hard-linked ({nlink} names) in {zone}, which the service writes to: not handed \
                 to the service account (it would own every name); remove the extra links"
            ),
        ),
        Concern::Special => (
            FindingKind::Special,
            format!("device, fifo or socket in {zone}: left unchanged"),
        ),
    };
    Finding {
        path,
        kind,
        message,
    }
}
