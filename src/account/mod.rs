//! The service account: looking up, planning and creating the system user and group.
//!
//! [`plan`] compares what the policy asks for ([`Spec`]) with what the account database holds,
//! through the [`Accounts`] trait, and returns the [`Action`]s that would make them agree. The
//! plan is pure given the trait, so it is tested without root against a fake database;
//! [`System`] is the real one (NSS lookups, `groupadd`/`useradd`/`usermod`).

mod system;

use std::fmt;
use std::path::{Path, PathBuf};

pub use system::{System, nologin_shell};

use crate::policy::Policy;

/// Why the account could not be looked up or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "the supplementary group {name} (service.groups) does not exist: create it first, or \
         remove it from the policy"
    )]
    MissingGroup { name: String },
    #[error("cannot look up {what}: {source}")]
    Lookup {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
}

/// The account the policy asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub user: String,
    /// The primary group.
    pub group: String,
    /// Supplementary groups; they must already exist.
    pub groups: Vec<String>,
    /// Home directory recorded for the account (never created by `useradd`).
    pub home: PathBuf,
    /// The shell for a new account.
    pub shell: PathBuf,
}

impl Spec {
    /// The account of `policy`, with `shell` as its (non-login) shell.
    pub fn from_policy(policy: &Policy, shell: &Path) -> Self {
        Self {
            user: policy.service.user.to_string(),
            group: policy.group.to_string(),
            groups: policy
                .service
                .groups
                .iter()
                .map(|g| g.to_string())
                .collect(),
            home: policy.state_dir.clone(),
            shell: shell.to_owned(),
        }
    }
}

/// A user as the account database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub uid: u32,
    pub gid: u32,
    pub shell: PathBuf,
}

/// The account database: lookups and the commands that change it.
pub trait Accounts {
    fn user(&self, name: &str) -> Result<Option<UserInfo>, AccountError>;
    fn group(&self, name: &str) -> Result<Option<u32>, AccountError>;
    /// Every group `user` is in (`getgrouplist`), its primary group `gid` included.
    fn groups_of(&self, user: &str, gid: u32) -> Result<Vec<u32>, AccountError>;
    /// Carries out one action.
    fn apply(&self, action: &Action) -> Result<(), AccountError>;
}

/// One change to the account database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateGroup {
        group: String,
    },
    CreateUser {
        user: String,
        group: String,
        groups: Vec<String>,
        home: PathBuf,
        shell: PathBuf,
    },
    AddGroups {
        user: String,
        groups: Vec<String>,
    },
    SetPrimaryGroup {
        user: String,
        group: String,
    },
    SetShell {
        user: String,
        shell: PathBuf,
    },
}

impl Action {
    /// The command that carries the action out.
    pub fn argv(&self) -> Vec<String> {
        let s = |x: &str| x.to_owned();
        match self {
            Action::CreateGroup { group } => vec![s("groupadd"), s("--system"), group.clone()],
            Action::CreateUser {
                user,
                group,
                groups,
                home,
                shell,
            } => {
                let mut v = vec![
                    s("useradd"),
                    s("--system"),
                    s("--no-create-home"),
                    s("--shell"),
                    shell.to_string_lossy().into_owned(),
                    s("--gid"),
                    group.clone(),
                    s("--home-dir"),
                    home.to_string_lossy().into_owned(),
                ];
                if !groups.is_empty() {
                    v.push(s("--groups"));
                    v.push(groups.join(","));
                }
                v.push(user.clone());
                v
            }
            Action::AddGroups { user, groups } => {
                vec![
                    s("usermod"),
                    s("-a"),
                    s("-G"),
                    groups.join(","),
                    user.clone(),
                ]
            }
            Action::SetPrimaryGroup { user, group } => {
                vec![s("usermod"), s("-g"), group.clone(), user.clone()]
            }
            Action::SetShell { user, shell } => vec![
                s("usermod"),
                s("--shell"),
                shell.to_string_lossy().into_owned(),
                user.clone(),
            ],
        }
    }

    /// A stable identifier for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateGroup { .. } => "create-group",
            Action::CreateUser { .. } => "create-user",
            Action::AddGroups { .. } => "add-groups",
            Action::SetPrimaryGroup { .. } => "set-primary-group",
            Action::SetShell { .. } => "set-shell",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateGroup { group } => write!(f, "create group {group}"),
            Action::CreateUser { user, group, .. } => {
                write!(
                    f,
                    "create system account {user} (group {group}, no login shell)"
                )
            }
            Action::AddGroups { user, groups } => {
                write!(f, "add {user} to group(s) {}", groups.join(", "))
            }
            Action::SetPrimaryGroup { user, group } => {
                write!(f, "set the primary group of {user} to {group}")
            }
            Action::SetShell { user, shell } => {
                write!(
                    f,
                    "set the shell of {user} to {} (no login)",
                    shell.display()
                )
            }
        }?;
        write!(f, ": {}", self.argv().join(" "))
    }
}

/// What the database holds and what must change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub warnings: Vec<String>,
    /// The account's uid, if it exists now.
    pub uid: Option<u32>,
    /// The primary group's gid, if it exists now.
    pub gid: Option<u32>,
    /// Every gid the account is or will be in, as far as known now (primary, supplementary).
    pub gids: Vec<u32>,
}

/// Accounts below this uid are system accounts (Debian's and most distributions' default).
pub const FIRST_REGULAR_UID: u32 = 1000;

/// Compares `spec` with the database.
pub fn plan(spec: &Spec, db: &dyn Accounts) -> Result<Plan, AccountError> {
    let mut plan = Plan::default();
    let mut supplementary = Vec::new();
    for g in &spec.groups {
        match db.group(g)? {
            Some(gid) => supplementary.push((g.clone(), gid)),
            None => return Err(AccountError::MissingGroup { name: g.clone() }),
        }
    }
    plan.gid = db.group(&spec.group)?;
    if plan.gid.is_none() {
        plan.actions.push(Action::CreateGroup {
            group: spec.group.clone(),
        });
    }
    plan.gids.extend(plan.gid);
    plan.gids.extend(supplementary.iter().map(|(_, g)| *g));

    match db.user(&spec.user)? {
        None => plan.actions.push(Action::CreateUser {
            user: spec.user.clone(),
            group: spec.group.clone(),
            groups: spec.groups.clone(),
            home: spec.home.clone(),
            shell: spec.shell.clone(),
        }),
        Some(u) => {
            plan.uid = Some(u.uid);
            let system = u.uid < FIRST_REGULAR_UID;
            if !system {
                plan.warnings.push(format!(
                    "{} is a regular account (uid {}), not a system account: warden leaves its \
                     shell alone; a dedicated system account is safer",
                    spec.user, u.uid
                ));
            }
            if plan.gid != Some(u.gid) {
                plan.actions.push(Action::SetPrimaryGroup {
                    user: spec.user.clone(),
                    group: spec.group.clone(),
                });
            }
            let member_of = db.groups_of(&spec.user, u.gid)?;
            plan.gids.extend(member_of.iter().copied());
            let missing: Vec<String> = supplementary
                .iter()
                .filter(|(_, gid)| !member_of.contains(gid))
                .map(|(g, _)| g.clone())
                .collect();
            if !missing.is_empty() {
                plan.actions.push(Action::AddGroups {
                    user: spec.user.clone(),
                    groups: missing,
                });
            }
            if is_login_shell(&u.shell) {
                if system {
                    plan.actions.push(Action::SetShell {
                        user: spec.user.clone(),
                        shell: spec.shell.clone(),
                    });
                } else {
                    plan.warnings.push(format!(
                        "{} has a login shell ({})",
                        spec.user,
                        u.shell.display()
                    ));
                }
            }
        }
    }
    plan.gids.sort_unstable();
    plan.gids.dedup();
    Ok(plan)
}

/// Carries out the plan's actions in order.
pub fn apply(plan: &Plan, db: &dyn Accounts) -> Result<(), AccountError> {
    plan.actions.iter().try_for_each(|a| db.apply(a))
}

/// True unless the shell refuses logins (`nologin`, `false`). An empty shell means `/bin/sh`.
pub fn is_login_shell(shell: &Path) -> bool {
    !matches!(
        shell.file_name().and_then(|n| n.to_str()),
        Some("nologin" | "false")
    )
}

#[cfg(test)]
mod tests;
