//! Ownership and modes of the deployment tree: a pure plan (desired vs observed) and its
//! application through `sys`.
//!
//! [`zone`] turns the policy into zones (tiers, logs, tmp, state) with the owner, group and
//! modes each wants; [`plan`] decides, entry by entry, what must change; [`walk`] reads the tree
//! in parallel through directory descriptors, never following a symlink, and applies the plan;
//! [`report`] renders the result. [`harden`] ties them together.

pub mod plan;
pub mod report;
pub mod walk;
pub mod zone;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use plan::Privilege;
pub use report::{Names, Report};
pub use zone::{Account, Principal, Zones};

use crate::policy::Policy;
use crate::sys::fs::{self as sysfs, Kind, Meta};
use report::{Finding, FindingKind};

/// Why hardening could not start.
#[derive(Debug, thiserror::Error)]
pub enum PermsError {
    #[error("{what} is {name}, which does not exist: create it, or change the policy")]
    UnknownName { what: String, name: String },
    #[error("tier {} does not exist", path.display())]
    TierMissing { path: PathBuf },
    #[error(
        "{} is a symlink: warden never follows symlinks; name the real path in the policy",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How to run.
pub struct Settings<'a> {
    pub dry_run: bool,
    pub who: Privilege,
    pub account: Account,
    /// Counts entries as they are checked (for a progress display).
    pub progress: Option<&'a AtomicU64>,
}

/// A zone root found before the walk.
struct Start {
    zone: usize,
    parent: Arc<OwnedFd>,
    parent_path: PathBuf,
    name: CString,
    meta: Option<Meta>,
}

/// Applies (or, in a dry run, plans) the policy's ownership and modes. Fails before changing
/// anything when a tier is missing or a zone's path leads through a symlink.
pub fn harden(
    policy: &Policy,
    settings: &Settings<'_>,
    lookup: zone::Lookup<'_>,
) -> Result<Report, PermsError> {
    let zones = Zones::new(policy, &settings.account, lookup)?;
    let create = !settings.dry_run;
    let mut starts = Vec::new();
    for z in zones.top_level() {
        starts.push(locate(&zones, z, create)?);
    }
    let mut findings = untraversable(&zones, &settings.account);

    let walker = walk::Walker::new(&zones, &settings.who, settings.dry_run, settings.progress);
    rayon::scope(|s| {
        for st in starts {
            let w = &walker;
            s.spawn(move |s| w.start(s, st.parent, st.parent_path, st.name, st.zone, st.meta));
        }
    });
    let (acc, missed) = walker.finish();
    for z in missed {
        findings.push(Finding {
            path: zones.zones[z].path.clone(),
            kind: FindingKind::NotReached,
            message: "not hardened: the path leads through a symlink or an unreadable directory"
                .to_owned(),
        });
    }
    findings.extend(acc.findings);
    let mut report = Report {
        dry_run: settings.dry_run,
        privileged: settings.who.root,
        root: zones.root.clone(),
        zones: report::labels(&zones),
        checked: acc.checked,
        changes: acc.changes,
        findings,
        failures: acc.failures,
    };
    use rayon::slice::ParallelSliceMut;
    report
        .changes
        .par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
    report.findings.sort_by(|a, b| a.path.cmp(&b.path));
    report.failures.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PermsError + use<> {
    let path = path.to_owned();
    move |source| PermsError::Io { op, path, source }
}

/// Checks, before anything changes (the account included), what would make [`harden`] fail:
/// a missing tier, a zone path through a symlink, an unknown tier owner or group.
pub fn preflight(policy: &Policy, lookup: zone::Lookup<'_>) -> Result<(), PermsError> {
    let account = Account {
        user: Principal::new(policy.service.user.as_str(), None),
        group: Principal::new(policy.group.as_str(), None),
        gids: Vec::new(),
    };
    let zones = Zones::new(policy, &account, lookup)?;
    for z in zones.top_level() {
        locate(&zones, z, false)?;
    }
    Ok(())
}

/// Opens the parent of zone `z` component by component from `/` (never following a symlink,
/// creating missing directories of a private zone when `create`) and examines the zone root.
fn locate(zones: &Zones, z: usize, create: bool) -> Result<Start, PermsError> {
    let zone = &zones.zones[z];
    let path = &zone.path;
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(PermsError::NotADirectory { path: path.clone() });
    };
    let name = CString::new(name.as_bytes())
        .map_err(|_| PermsError::NotADirectory { path: path.clone() })?;
    let private = zone.kind.private();
    let mut fd = sysfs::open_root().map_err(io_err("open", Path::new("/")))?;
    let mut at = PathBuf::from("/");
    let mut missing = false;
    for c in parent_path.components() {
        let Component::Normal(part) = c else { continue };
        at.push(part);
        let part = CString::new(part.as_bytes())
            .map_err(|_| PermsError::NotADirectory { path: at.clone() })?;
        let mut opened = sysfs::open_path_at(fd.as_fd(), &part);
        if let Err(e) = &opened
            && e.kind() == io::ErrorKind::NotFound
            && private
        {
            if !create {
                missing = true;
                break;
            }
            sysfs::mkdir_at(fd.as_fd(), &part, 0o755).map_err(io_err("create directory", &at))?;
            opened = sysfs::open_path_at(fd.as_fd(), &part);
        }
        fd = opened.map_err(|e| classify(e, &at, "open directory"))?;
    }
    let meta = if missing {
        None
    } else {
        match sysfs::stat_at(fd.as_fd(), &name) {
            Ok(m) if m.kind == Kind::Symlink => {
                return Err(PermsError::Symlink { path: path.clone() });
            }
            Ok(m) if private && m.kind != Kind::Dir => {
                return Err(PermsError::NotADirectory { path: path.clone() });
            }
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound && private => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PermsError::TierMissing { path: path.clone() });
            }
            Err(e) => return Err(io_err("examine", path)(e)),
        }
    };
    Ok(Start {
        zone: z,
        parent: Arc::new(fd),
        parent_path: parent_path.to_owned(),
        name,
        meta,
    })
}

fn classify(e: io::Error, path: &Path, op: &'static str) -> PermsError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => PermsError::Symlink {
            path: path.to_owned(),
        },
        Some(libc::ENOTDIR) => PermsError::NotADirectory {
            path: path.to_owned(),
        },
        _ => PermsError::Io {
            op,
            path: path.to_owned(),
            source: e,
        },
    }
}

/// True when `account` may enter a directory with this owner, group and mode.
pub fn can_traverse(meta: &Meta, account: &Account) -> bool {
    if account.user.id == Some(0) {
        return true;
    }
    let bit = if account.user.id == Some(meta.uid) {
        0o100
    } else if account.gids.contains(&meta.gid) || account.group.id == Some(meta.gid) {
        0o010
    } else {
        0o001
    };
    meta.mode & bit != 0
}

/// Directories inside the deployment (the root included) that lead to a zone and that the
/// account cannot enter. Directories inside a zone are left out: the zone's own modes let the
/// account through.
fn untraversable(zones: &Zones, account: &Account) -> Vec<Finding> {
    let mut blocked: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for z in &zones.zones {
        let Ok(rel) = z.path.strip_prefix(&zones.root) else {
            continue;
        };
        let mut dir = zones.root.clone();
        let mut parts = rel.components().peekable();
        loop {
            let inside_zone = zones.zones.iter().any(|o| dir.starts_with(&o.path));
            if !inside_zone
                && let Ok(meta) = sysfs::lstat(&dir)
                && meta.kind == Kind::Dir
                && !can_traverse(&meta, account)
            {
                blocked
                    .entry(dir.clone())
                    .or_default()
                    .push(z.label.clone());
            }
            match parts.next() {
                Some(Component::Normal(p)) if parts.peek().is_some() => dir.push(p),
                _ => break,
            }
        }
    }
    blocked
        .into_iter()
        .map(|(dir, behind)| {
            let meta = sysfs::lstat(&dir).ok();
            let names = Names::default();
            let how = meta.map_or_else(String::new, |m| {
                format!(
                    " ({}:{} {:04o})",
                    names.user(m.uid),
                    names.group(m.gid),
                    m.mode
                )
            });
            Finding {
                kind: FindingKind::Untraversable,
                message: format!(
                    "the service account {} cannot enter this directory{how}, so it cannot reach {}",
                    account.user.name,
                    behind.join(", ")
                ),
                path: dir,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
