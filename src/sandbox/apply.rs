//! Applying a plan in the spawn helper, in two steps: [`prepare`] opens every rule's path and
//! builds the ruleset while still root (so every path opens), [`Prepared::enforce`] restricts
//! the process after the privilege drop and `no_new_privs`, right before `execve`.

use std::os::fd::OwnedFd;

use landlock::{
    ABI, Access as _, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::{Access, Error, Feature, Level, Limits, Plan, Status, TESTED_ABI, gaps, support};
use crate::policy::Enforcement;

/// The ABI the ruleset is built for: the newest tested here.
const ABI_PINNED: ABI = ABI::V7;

/// A ruleset built and ready to enforce.
pub struct Prepared {
    ruleset: Option<RulesetCreated>,
    status: Status,
    enforcement: Enforcement,
}

fn fs_access(a: Access) -> BitFlags<AccessFs> {
    let all = AccessFs::from_all(ABI_PINNED);
    match a {
        Access::List => AccessFs::ReadDir.into(),
        Access::Read => AccessFs::ReadFile | AccessFs::ReadDir,
        Access::ReadExec => AccessFs::from_read(ABI_PINNED),
        Access::ReadWrite => all & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock),
        Access::Device => {
            AccessFs::ReadFile
                | AccessFs::WriteFile
                | AccessFs::Truncate
                | AccessFs::IoctlDev
                | AccessFs::ReadDir
        }
    }
}

fn landlock_err(e: impl std::fmt::Display) -> Error {
    Error::Landlock(e.to_string())
}

/// Opens every path of the plan and builds the ruleset. Run as root, before the drop.
pub fn prepare(plan: &Plan) -> Result<Prepared, Error> {
    let kernel = support();
    let mut status = Status {
        landlock: Level::None,
        kernel_abi: kernel.abi,
        requested_abi: TESTED_ABI,
        enforced: Vec::new(),
        not_enforced: Vec::new(),
        rules: 0,
        bind_ports: plan.bind_ports.clone(),
        skipped: Vec::new(),
        limits: Limits::default(),
    };
    if plan.enforcement == Enforcement::Off {
        status.landlock = Level::Off;
        status.not_enforced = gaps(None, Some("sandbox.landlock = \"off\""));
        return Ok(Prepared {
            ruleset: None,
            status,
            enforcement: plan.enforcement,
        });
    }
    let missing = gaps(kernel.abi, kernel.reason.as_deref());
    if plan.enforcement == Enforcement::Required && !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|g| format!("{} ({})", g.feature.as_str(), g.reason))
            .collect();
        return Err(Error::NotEnforced(list.join(", ")));
    }
    status.not_enforced = missing;
    let Some(abi) = kernel.abi else {
        return Ok(Prepared {
            ruleset: None,
            status,
            enforcement: plan.enforcement,
        });
    };
    status.enforced = Feature::ALL
        .iter()
        .copied()
        .filter(|f| f.abi() <= abi)
        .collect();

    let level = match plan.enforcement {
        Enforcement::Required => CompatLevel::HardRequirement,
        _ => CompatLevel::BestEffort,
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(ABI_PINNED))
        .map_err(landlock_err)?;
    if abi >= 4 || level == CompatLevel::HardRequirement {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp)
            .map_err(landlock_err)?;
    }
    if abi >= 6 || level == CompatLevel::HardRequirement {
        ruleset = ruleset
            .scope(Scope::from_all(ABI_PINNED))
            .map_err(landlock_err)?;
    }
    let mut created = ruleset.create().map_err(landlock_err)?;
    let file_mask = AccessFs::from_file(ABI_PINNED);
    for r in &plan.rules {
        let fd = match open_path(&r.path) {
            Ok(fd) => fd,
            Err(source) if r.required => {
                return Err(Error::Path {
                    why: format!("cannot open {} for the sandbox:", r.why),
                    path: r.path.clone(),
                    source,
                });
            }
            Err(_) => {
                status.skipped.push(r.path.display().to_string());
                continue;
            }
        };
        let is_dir =
            std::fs::metadata(format!("/proc/self/fd/{}", raw(&fd))).is_ok_and(|m| m.is_dir());
        let mut access = fs_access(r.access);
        if !is_dir {
            access &= file_mask;
        }
        if access.is_empty() {
            continue;
        }
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| Error::Landlock(format!("rule for {}: {e}", r.path.display())))?;
        status.rules += 1;
    }
    if abi >= 4 || level == CompatLevel::HardRequirement {
        for &port in &plan.bind_ports {
            created = created
                .add_rule(NetPort::new(port, AccessNet::BindTcp))
                .map_err(|e| Error::Landlock(format!("rule for TCP port {port}: {e}")))?;
        }
    }
    Ok(Prepared {
        ruleset: Some(created),
        status,
        enforcement: plan.enforcement,
    })
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// Opens a rule's path with `O_PATH` (following symlinks: the rule is about what the name
/// leads to now).
fn open_path(p: &std::path::Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(p)?;
    Ok(f.into())
}

impl Prepared {
    /// The status as it will be once enforced.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Restricts the calling thread (after the privilege drop and `no_new_privs`).
    pub fn enforce(self, limits: Limits) -> Result<Status, Error> {
        let mut status = self.status;
        status.limits = limits;
        let Some(ruleset) = self.ruleset else {
            return Ok(status);
        };
        let r = ruleset.restrict_self().map_err(landlock_err)?;
        status.landlock = match r.ruleset {
            RulesetStatus::FullyEnforced => Level::Full,
            RulesetStatus::PartiallyEnforced => Level::Partial,
            RulesetStatus::NotEnforced => Level::None,
        };
        if status.landlock == Level::None {
            status.enforced.clear();
            status.not_enforced = gaps(None, Some("the kernel did not enforce the ruleset"));
        } else if status.landlock == Level::Full && !status.not_enforced.is_empty() {
            status.landlock = Level::Partial;
        }
        if self.enforcement == Enforcement::Required && !status.complete() {
            return Err(Error::NotEnforced(status.to_string()));
        }
        Ok(status)
    }
}
