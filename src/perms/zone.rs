//! Zones: the parts of the tree warden manages (tiers, logs, tmp, state), each with the owner,
//! group and modes the policy gives it. Built once from the policy; no file system access.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::PermsError;
use crate::policy::{Access, Policy};

/// What a zone is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneKind {
    /// A read-only tier: the service reads, never writes or chmods.
    ReadOnly,
    /// A read-write tier: the service's own.
    ReadWrite,
    Logs,
    Tmp,
    State,
}

impl ZoneKind {
    /// True for the places the service writes to.
    pub fn writable(self) -> bool {
        self != ZoneKind::ReadOnly
    }

    /// True for logs, tmp and state: created when missing.
    pub fn private(self) -> bool {
        matches!(self, ZoneKind::Logs | ZoneKind::Tmp | ZoneKind::State)
    }
}

/// A user or group by name, with its id when it exists (a dry run may plan for an account that
/// is not created yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: Arc<str>,
    pub id: Option<u32>,
}

impl Principal {
    pub fn new(name: &str, id: Option<u32>) -> Self {
        Self {
            name: name.into(),
            id,
        }
    }
}

/// The service account as far as it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: Principal,
    pub group: Principal,
    /// Every gid the account is (or will be) in.
    pub gids: Vec<u32>,
}

/// One managed part of the tree and the state the policy wants for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub kind: ZoneKind,
    /// Absolute path.
    pub path: PathBuf,
    /// How people see it: the path relative to the deployment, or absolute outside it.
    pub label: String,
    pub owner: Principal,
    pub group: Principal,
    pub dir_mode: u32,
    pub file_mode: u32,
    /// Files keep their owner-execute bit (tmp, state).
    pub keep_owner_exec: bool,
}

impl Zone {
    /// The mode a directory or regular file should have.
    pub fn mode_for(&self, is_dir: bool, current: u32) -> u32 {
        if is_dir {
            self.dir_mode
        } else if self.keep_owner_exec {
            self.file_mode | (current & 0o100)
        } else {
            self.file_mode
        }
    }
}

/// Every zone of a policy, least specific first.
#[derive(Debug, Clone)]
pub struct Zones {
    /// The deployment root.
    pub root: PathBuf,
    pub zones: Vec<Zone>,
    /// Where symlinks may point without being reported: the root and private directories
    /// outside it.
    pub places: Vec<PathBuf>,
}

/// Finds the id of a user (`false`) or group (`true`) name.
pub type Lookup<'a> = &'a dyn Fn(bool, &str) -> Option<u32>;

impl Zones {
    /// The zones of `policy`, owned by `account` where the policy says the service owns them.
    /// Other owners and groups (a tier's `owner`, `group`) must exist.
    pub fn new(policy: &Policy, account: &Account, lookup: Lookup<'_>) -> Result<Self, PermsError> {
        let root = policy.root.clone();
        let label = |p: &Path| match p.strip_prefix(&root) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => p.display().to_string(),
        };
        let resolve = |is_group: bool, name: &str, what: String| {
            if !is_group && name == &*account.user.name {
                return Ok(account.user.clone());
            }
            if is_group && name == &*account.group.name {
                return Ok(account.group.clone());
            }
            match lookup(is_group, name) {
                Some(id) => Ok(Principal::new(name, Some(id))),
                None => Err(PermsError::UnknownName {
                    what,
                    name: name.to_owned(),
                }),
            }
        };
        let mut zones = Vec::new();
        for t in &policy.tiers {
            let ro = t.access == Access::ReadOnly;
            let owner = if ro {
                resolve(
                    false,
                    t.owner.as_str(),
                    format!("the owner of tier {}", t.rel.display()),
                )?
            } else {
                account.user.clone()
            };
            let group = resolve(
                true,
                t.group.as_str(),
                format!("the group of tier {}", t.rel.display()),
            )?;
            zones.push(Zone {
                kind: if ro {
                    ZoneKind::ReadOnly
                } else {
                    ZoneKind::ReadWrite
                },
                path: t.path.clone(),
                label: label(&t.path),
                owner,
                group,
                dir_mode: t.dir_mode.0,
                file_mode: t.file_mode.0,
                keep_owner_exec: false,
            });
        }
        let private = [
            (
                ZoneKind::Logs,
                &policy.logs_dir,
                0o750,
                policy.logs.file_mode.0,
            ),
            (ZoneKind::Tmp, &policy.tmp_dir, 0o700, 0o600),
            (ZoneKind::State, &policy.state_dir, 0o700, 0o600),
        ];
        for (kind, path, dir_mode, file_mode) in private {
            zones.push(Zone {
                kind,
                path: path.clone(),
                label: label(path),
                owner: account.user.clone(),
                group: account.group.clone(),
                dir_mode,
                file_mode,
                keep_owner_exec: kind != ZoneKind::Logs,
            });
        }
        // Least specific first; on equal paths the private directory (pushed later) wins.
        zones.sort_by_key(|z| z.path.components().count());
        let mut places = vec![root.clone()];
        places.extend(
            zones
                .iter()
                .filter(|z| z.kind.private() && !z.path.starts_with(&root))
                .map(|z| z.path.clone()),
        );
        Ok(Self {
            root,
            zones,
            places,
        })
    }

    /// The zone that governs `path`: the most specific one containing it.
    pub fn zone_for(&self, path: &Path) -> Option<usize> {
        self.zones.iter().rposition(|z| path.starts_with(&z.path))
    }

    /// Zones not inside another zone, in order: the walk starts from these.
    pub fn top_level(&self) -> Vec<usize> {
        (0..self.zones.len())
            .filter(|&i| {
                let p = &self.zones[i].path;
                // The most specific zone for an equal path is the last one.
                self.zone_for(p) == Some(i)
                    && !self.zones[..i]
                        .iter()
                        .any(|z| p.starts_with(&z.path) && z.path != *p)
            })
            .collect()
    }

    /// Zones inside other zones, by parent directory: name in that directory and zone index.
    pub fn nested(&self) -> HashMap<PathBuf, Vec<(CString, usize)>> {
        let top = self.top_level();
        let mut out: HashMap<PathBuf, Vec<(CString, usize)>> = HashMap::new();
        for (i, z) in self.zones.iter().enumerate() {
            if top.contains(&i) || self.zone_for(&z.path) != Some(i) {
                continue;
            }
            let (Some(parent), Some(name)) = (z.path.parent(), z.path.file_name()) else {
                continue;
            };
            let Ok(name) = CString::new(name.as_bytes()) else {
                continue;
            };
            let list = out.entry(parent.to_owned()).or_default();
            list.retain(|(n, _)| *n != name);
            list.push((name, i));
        }
        out
    }

    /// True when `path` (absolute, normalized) is inside the deployment or one of its private
    /// directories.
    pub fn inside_deployment(&self, path: &Path) -> bool {
        self.places.iter().any(|p| path.starts_with(p))
    }
}

/// Lexically normalizes `p` relative to `base` (absolute): `.` dropped, `..` pops.
pub fn normalize(base: &Path, p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in base.join(p).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}
