//! The real account database: NSS lookups through nix, changes through the shadow tools.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::unistd::{Gid, Group, User};

use super::{AccountError, Accounts, Action, UserInfo};

/// The host's account database.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

/// The shell given to the account: the first of `/usr/sbin/nologin`, `/sbin/nologin` that
/// exists, else `/bin/false`.
pub fn nologin_shell() -> PathBuf {
    ["/usr/sbin/nologin", "/sbin/nologin"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or(Path::new("/bin/false"))
        .to_owned()
}

/// The shadow tool `name`, from the system directories when there (they are often not on a
/// user's PATH), else from PATH.
fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Accounts for System {
    fn user(&self, name: &str) -> Result<Option<UserInfo>, AccountError> {
        let u = User::from_name(name).map_err(|source| AccountError::Lookup {
            what: format!("user {name}"),
            source,
        })?;
        Ok(u.map(|u| UserInfo {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            shell: u.shell,
        }))
    }

    fn group(&self, name: &str) -> Result<Option<u32>, AccountError> {
        let g = Group::from_name(name).map_err(|source| AccountError::Lookup {
            what: format!("group {name}"),
            source,
        })?;
        Ok(g.map(|g| g.gid.as_raw()))
    }

    fn groups_of(&self, user: &str, gid: u32) -> Result<Vec<u32>, AccountError> {
        let lookup = |source| AccountError::Lookup {
            what: format!("the groups of {user}"),
            source,
        };
        let name = CString::new(user).map_err(|_| lookup(nix::Error::EINVAL))?;
        let gids = nix::unistd::getgrouplist(&name, Gid::from_raw(gid)).map_err(lookup)?;
        Ok(gids.into_iter().map(|g| g.as_raw()).collect())
    }

    fn apply(&self, action: &Action) -> Result<(), AccountError> {
        let argv = action.argv();
        let command = argv.join(" ");
        // The shadow tools refuse to run while another process holds /etc/passwd's lock:
        // wait a little and try again rather than fail a whole run.
        let mut delay = Duration::from_millis(50);
        for attempt in 0.. {
            let out = Command::new(tool(&argv[0]))
                .args(&argv[1..])
                .env("LC_ALL", "C")
                .output()
                .map_err(|source| AccountError::Spawn {
                    command: command.clone(),
                    source,
                })?;
            if out.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if stderr.contains("cannot lock") && attempt < 20 {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(500));
                continue;
            }
            return Err(AccountError::Command {
                command,
                status: out.status.to_string(),
                stderr,
            });
        }
        unreachable!("the loop returns")
    }
}
