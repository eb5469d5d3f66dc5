//! Who the service runs as: the policy's account when warden starts as root, otherwise the
//! calling user (and warden says so). Also prepares the private directories for that account.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

use super::spawn::Credentials;
use crate::policy::Policy;

/// The resolved identity of the service.
#[derive(Debug, Clone)]
pub struct Account {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<PathBuf>,
    /// `Some` when warden switches to the account (it runs as root).
    pub credentials: Option<Credentials>,
}

impl Account {
    /// The service's environment for this account, built from warden's own (see `env::build`).
    pub fn environment(&self, policy: &Policy) -> BTreeMap<String, String> {
        super::env::build(
            policy,
            &super::env::Identity {
                user: &self.user,
                home: self.home.as_deref(),
            },
            std::env::vars(),
        )
    }
}

/// Why the account cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the account {0} does not exist: run `warden harden` (as root) to create it")]
    NoUser(String),
    #[error("the group {0} does not exist: run `warden harden` (as root) to create it")]
    NoGroup(String),
    #[error("cannot look up {what} {name}: {source}")]
    Lookup {
        what: &'static str,
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error(
        "the account {0} is root (uid 0): refusing to run the service as root unless service.allow-root = true"
    )]
    Root(String),
    #[error("cannot prepare {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is a symlink; refusing to use it as a private directory", .0.display())]
    Symlink(PathBuf),
}

/// Resolves the account the service will run as.
pub fn resolve(policy: &Policy) -> Result<Account, AccountError> {
    fn lookup(what: &'static str, name: &str) -> impl FnOnce(nix::Error) -> AccountError {
        let name = name.to_owned();
        move |source| AccountError::Lookup { what, name, source }
    }
    if !Uid::effective().is_root() {
        let uid = Uid::effective();
        let me = User::from_uid(uid).map_err(lookup("user", "self"))?;
        let user = me
            .as_ref()
            .map_or_else(|| uid.to_string(), |u| u.name.clone());
        eprintln!(
            "warden: note: not started as root: the service runs as {user} (uid {uid}) without an account switch"
        );
        return Ok(Account {
            user,
            uid: uid.as_raw(),
            gid: Gid::effective().as_raw(),
            home: me.map(|u| u.dir),
            credentials: None,
        });
    }
    let name = policy.service.user.as_str();
    let user = User::from_name(name)
        .map_err(lookup("user", name))?
        .ok_or_else(|| AccountError::NoUser(name.into()))?;
    let gname = policy.group.as_str();
    let group = Group::from_name(gname)
        .map_err(lookup("group", gname))?
        .ok_or_else(|| AccountError::NoGroup(gname.into()))?;
    if user.uid.is_root() {
        if !policy.service.allow_root {
            return Err(AccountError::Root(name.into()));
        }
        eprintln!("warden: warning: running the service as root (service.allow-root = true)");
        return Ok(Account {
            user: name.into(),
            uid: 0,
            gid: group.gid.as_raw(),
            home: Some(user.dir),
            credentials: None,
        });
    }
    let cname = CString::new(name).map_err(|_| AccountError::NoUser(name.into()))?;
    let mut groups: Vec<u32> = getgrouplist(&cname, group.gid)
        .map_err(lookup("groups of", name))?
        .iter()
        .map(|g| g.as_raw())
        .collect();
    for g in &policy.service.groups {
        let gr = Group::from_name(g.as_str())
            .map_err(lookup("group", g.as_str()))?
            .ok_or_else(|| AccountError::NoGroup(g.to_string()))?;
        if !groups.contains(&gr.gid.as_raw()) {
            groups.push(gr.gid.as_raw());
        }
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(Account {
        user: name.into(),
        uid: user.uid.as_raw(),
        gid: group.gid.as_raw(),
        home: Some(user.dir),
        credentials: Some(Credentials {
            uid: user.uid.as_raw(),
            gid: group.gid.as_raw(),
            groups,
        }),
    })
}

/// Creates (if missing) and secures the private directories the service writes: tmp and state
/// 0700, logs 0750, and the cache directories the environment points to; all owned by the
/// account. Empties tmp first when the policy asks for it.
pub fn prepare_dirs(
    policy: &Policy,
    acct: &Account,
    env: &BTreeMap<String, String>,
) -> Result<(), AccountError> {
    if policy.tmp.clean_on_start && policy.tmp_dir.is_dir() {
        empty_dir(&policy.tmp_dir)?;
    }
    private_dir(&policy.tmp_dir, 0o700, acct)?;
    private_dir(&policy.state_dir, 0o700, acct)?;
    private_dir(&policy.logs_dir, 0o750, acct)?;
    for d in super::env::dirs_to_create(env, policy) {
        private_dir(&d, 0o700, acct)?;
    }
    Ok(())
}

fn private_dir(path: &Path, mode: u32, acct: &Account) -> Result<(), AccountError> {
    let err = |source| AccountError::Dir {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(AccountError::Symlink(path.to_owned())),
        Ok(_) => {}
        Err(_) => {
            if let Some(parent) = path.parent() {
                // Parents inside a private dir were handled before (tmp/state come first).
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(err)?;
            }
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(path)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(err)?;
        }
    }
    if acct.credentials.is_some() {
        std::os::unix::fs::lchown(path, Some(acct.uid), Some(acct.gid)).map_err(err)?;
    }
    let m = std::fs::symlink_metadata(path).map_err(err)?;
    if m.permissions().mode() & 0o7777 != mode && (acct.credentials.is_some() || is_mine(&m)) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}

fn is_mine(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.uid() == Uid::effective().as_raw()
}

fn empty_dir(dir: &Path) -> Result<(), AccountError> {
    let err = |source| AccountError::Dir {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let ty = entry.file_type().map_err(err)?;
        let p = entry.path();
        // remove_dir_all does not follow symlinks.
        if ty.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .map_err(|source| AccountError::Dir {
            path: p.clone(),
            source,
        })?;
    }
    Ok(())
}
