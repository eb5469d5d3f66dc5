//! The plan: what must change for one entry, given what was observed and the zone's rule. Pure
//! functions, no file system access; the walk feeds them and applies their result.

use std::path::PathBuf;
use std::sync::Arc;

use super::zone::{Zone, ZoneKind, Zones};
use crate::sys::fs::{Kind, Meta};

/// Owner, group and mode as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl From<&Meta> for State {
    fn from(m: &Meta) -> Self {
        Self {
            uid: m.uid,
            gid: m.gid,
            mode: m.mode,
        }
    }
}

/// Owner, group and mode as the policy wants them. An id is `None` when the account does not
/// exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub owner: Arc<str>,
    pub uid: Option<u32>,
    pub group: Arc<str>,
    pub gid: Option<u32>,
    pub mode: u32,
}

/// What must change on one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub target: Target,
    /// Owner or group differ.
    pub chown: bool,
    /// Mode differs.
    pub chmod: bool,
}

/// Something about an entry that a person should know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concern {
    /// A regular file in a read-only tier with other names (hard links) elsewhere.
    HardLinked { nlink: u64 },
    /// A hard-linked file in a place the service writes to: chowning it would hand every
    /// other name of the file to the service, so it is left unchanged.
    HardLinkedSkipped { nlink: u64 },
    /// A device, fifo or socket: left unchanged.
    Special,
}

/// Who is applying the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    /// May chown and chmod anything (effective uid 0).
    pub root: bool,
    pub euid: u32,
    pub egid: u32,
    /// Groups the process may give its files to.
    pub groups: Vec<u32>,
}

impl Privilege {
    /// The current process.
    pub fn current() -> std::io::Result<Self> {
        let euid = crate::sys::ids::euid();
        Ok(Self {
            root: euid == 0,
            euid,
            egid: crate::sys::ids::egid(),
            groups: crate::sys::ids::groups()?,
        })
    }
}

/// The state `zone` wants for an entry, `None` for symlinks and special files (left alone).
pub fn desired(zone: &Zone, meta: &Meta) -> Option<Target> {
    let is_dir = match meta.kind {
        Kind::Dir => true,
        Kind::File => false,
        Kind::Symlink | Kind::Special => return None,
    };
    Some(Target {
        owner: zone.owner.name.clone(),
        uid: zone.owner.id,
        group: zone.group.name.clone(),
        gid: zone.group.id,
        mode: zone.mode_for(is_dir, meta.mode),
    })
}

/// What must change on an entry of `zone`, and what to report about it.
pub fn plan_entry(zone: &Zone, meta: &Meta) -> (Option<Planned>, Option<Concern>) {
    if meta.kind == Kind::Special {
        return (None, Some(Concern::Special));
    }
    let Some(target) = desired(zone, meta) else {
        return (None, None);
    };
    let chown = target.uid != Some(meta.uid) || target.gid != Some(meta.gid);
    let chmod = target.mode != meta.mode;
    let hard_linked = meta.kind == Kind::File && meta.nlink > 1;
    let concern = match zone.kind {
        ZoneKind::ReadOnly if hard_linked => Some(Concern::HardLinked { nlink: meta.nlink }),
        k if k.writable() && hard_linked && target.uid != Some(meta.uid) => {
            return (None, Some(Concern::HardLinkedSkipped { nlink: meta.nlink }));
        }
        _ => None,
    };
    let planned = (chown || chmod).then_some(Planned {
        target,
        chown,
        chmod,
    });
    (planned, concern)
}

/// Which parts of `planned` the caller may apply: (owner and group, mode).
pub fn permitted(meta: &Meta, planned: &Planned, who: &Privilege) -> (bool, bool) {
    let t = &planned.target;
    if who.root {
        // An account that does not exist yet is created before the tree is changed.
        return (true, true);
    }
    let resolved = t.uid.is_some() && t.gid.is_some();
    let owns = meta.uid == who.euid;
    // Without privilege, an owner may only change the group, to one of its own groups.
    let can_chown = resolved
        && owns
        && t.uid == Some(meta.uid)
        && t.gid.is_some_and(|g| who.groups.contains(&g));
    (can_chown, owns)
}

/// True when some part of `planned` needs more privilege than `who` has.
pub fn needs_root(meta: &Meta, planned: &Planned, who: &Privilege) -> bool {
    let (chown, chmod) = permitted(meta, planned, who);
    (planned.chown && !chown) || (planned.chmod && !chmod)
}

/// An entry as observed, for [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub path: PathBuf,
    pub meta: Meta,
}

/// One planned change, as [`plan`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    pub path: PathBuf,
    pub zone: usize,
    pub before: State,
    pub planned: Planned,
    pub needs_root: bool,
}

/// The whole plan for a set of observed entries: the changes, and the concerns to report.
/// Entries outside every zone are not touched.
pub fn plan(
    zones: &Zones,
    entries: &[Observed],
    who: &Privilege,
) -> (Vec<PlannedChange>, Vec<(PathBuf, Concern)>) {
    let mut changes = Vec::new();
    let mut concerns = Vec::new();
    for e in entries {
        let Some(z) = zones.zone_for(&e.path) else {
            continue;
        };
        let (planned, concern) = plan_entry(&zones.zones[z], &e.meta);
        if let Some(c) = concern {
            concerns.push((e.path.clone(), c));
        }
        if let Some(p) = planned {
            changes.push(PlannedChange {
                path: e.path.clone(),
                zone: z,
                before: State::from(&e.meta),
                needs_root: needs_root(&e.meta, &p, who),
                planned: p,
            });
        }
    }
    (changes, concerns)
}
