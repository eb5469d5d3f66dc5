//! The kernel sandbox around the service: Landlock rules for the file system, TCP bind ports and
//! scoping, and the typed status of what was enforced.
//!
//! [`plan`] turns a policy into a [`Plan`] (the paths, their access, the ports), on the
//! supervisor's side; the spawn helper carries the plan across and [`apply`]s it between the
//! privilege drop and `execve`, and reports a [`Status`]. Landlock is pinned to the newest ABI
//! tested here ([`TESTED_ABI`]): a newer kernel gets exactly these rules, an older one gets what
//! it supports and the status names every restriction left out.

mod apply;
pub mod plan;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use apply::{Prepared, prepare};
pub use plan::plan;

use crate::policy::Enforcement;

/// The newest Landlock ABI warden has been tested with, and asks for.
pub const TESTED_ABI: u32 = 7;

/// How a rule lets the service use a path (and everything beneath it, for a directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// List directories only (an ancestor of something the service may use).
    List,
    /// Read files and list directories.
    Read,
    /// Read, list and execute.
    ReadExec,
    /// Everything but execute (and creating device nodes): the private directories.
    ReadWrite,
    /// Open for reading and writing, truncate and ioctl: device files.
    Device,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::List => "list",
            Access::Read => "read",
            Access::ReadExec => "read+exec",
            Access::ReadWrite => "read-write",
            Access::Device => "device",
        }
    }
}

/// One path rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub path: PathBuf,
    pub access: Access,
    /// What the rule is for, in messages.
    pub why: String,
    /// A required path that cannot be opened stops the start; an optional one (a system
    /// directory this host does not have, a device preset without the device) is reported.
    pub required: bool,
}

/// Everything the helper needs to sandbox the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub enforcement: Enforcement,
    pub rules: Vec<Rule>,
    /// TCP ports the service may bind (ABI 4).
    pub bind_ports: Vec<u16>,
    /// Device presets, for the status.
    pub devices: Vec<String>,
}

/// A restriction Landlock can apply, by the ABI that introduced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Reads, writes, creation, removal and execution of files (ABI 1).
    Filesystem,
    /// Linking or renaming files across directories (ABI 2).
    Refer,
    /// Truncation (ABI 3): without it a read-only file can still be truncated.
    Truncate,
    /// TCP bind only to the policy's ports (ABI 4).
    TcpBind,
    /// ioctl on device files (ABI 5).
    DeviceIoctl,
    /// Signals only to processes in the same sandbox (ABI 6).
    SignalScope,
    /// Abstract unix sockets only within the same sandbox (ABI 6).
    AbstractUnixScope,
}

impl Feature {
    pub const ALL: [Feature; 7] = [
        Feature::Filesystem,
        Feature::Refer,
        Feature::Truncate,
        Feature::TcpBind,
        Feature::DeviceIoctl,
        Feature::SignalScope,
        Feature::AbstractUnixScope,
    ];

    /// The ABI that introduced it.
    pub fn abi(self) -> u32 {
        match self {
            Feature::Filesystem => 1,
            Feature::Refer => 2,
            Feature::Truncate => 3,
            Feature::TcpBind => 4,
            Feature::DeviceIoctl => 5,
            Feature::SignalScope | Feature::AbstractUnixScope => 6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Filesystem => "filesystem",
            Feature::Refer => "refer",
            Feature::Truncate => "truncate",
            Feature::TcpBind => "tcp-bind",
            Feature::DeviceIoctl => "device-ioctl",
            Feature::SignalScope => "signal-scope",
            Feature::AbstractUnixScope => "abstract-unix-scope",
        }
    }

    /// What is left open without it.
    pub fn risk(self) -> &'static str {
        match self {
            Feature::Filesystem => "the service can read and write every file its account may",
            Feature::Refer => "files can be linked or renamed across directories",
            Feature::Truncate => "read-only files (the weights) can still be truncated",
            Feature::TcpBind => "the service can listen on any port",
            Feature::DeviceIoctl => "ioctl on any device file the service can open",
            Feature::SignalScope => "the service can signal processes of its account outside it",
            Feature::AbstractUnixScope => {
                "the service can connect to abstract unix sockets outside it"
            }
        }
    }
}

/// How much of Landlock is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Every requested restriction is enforced.
    Full,
    /// Some are (the status lists the rest).
    Partial,
    /// None: the kernel has no Landlock.
    None,
    /// The policy turned it off.
    Off,
}

/// A restriction that is not enforced, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub feature: Feature,
    pub reason: String,
}

/// Resource limits as set for the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub core: u64,
    pub nofile: Option<u64>,
    pub nproc: Option<u64>,
    pub no_new_privs: bool,
}

/// What the sandbox enforces for one service process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub landlock: Level,
    /// The kernel's Landlock ABI (`None`: unavailable).
    pub kernel_abi: Option<u32>,
    /// The ABI asked for.
    pub requested_abi: u32,
    pub enforced: Vec<Feature>,
    pub not_enforced: Vec<Gap>,
    /// Path rules in force.
    pub rules: usize,
    pub bind_ports: Vec<u16>,
    /// Optional paths left out because they do not exist here.
    pub skipped: Vec<String>,
    pub limits: Limits,
}

impl Status {
    /// True when every requested restriction is enforced.
    pub fn complete(&self) -> bool {
        self.landlock == Level::Full && self.not_enforced.is_empty()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.landlock {
            Level::Off => f.write_str("landlock off (sandbox.landlock = \"off\")")?,
            Level::None => f.write_str("landlock not enforced")?,
            Level::Full | Level::Partial => {
                let abi = self.kernel_abi.unwrap_or(0).min(self.requested_abi);
                write!(
                    f,
                    "landlock ABI {abi}, {}: {} rules",
                    if self.landlock == Level::Full {
                        "fully enforced"
                    } else {
                        "partially enforced"
                    },
                    self.rules
                )?;
                for feat in &self.enforced {
                    write!(f, ", {}", feat.as_str())?;
                    if *feat == Feature::TcpBind {
                        let ports: Vec<String> =
                            self.bind_ports.iter().map(ToString::to_string).collect();
                        write!(
                            f,
                            " ({})",
                            if ports.is_empty() {
                                "no port".to_owned()
                            } else {
                                ports.join(" ")
                            }
                        )?;
                    }
                }
            }
        }
        if !self.not_enforced.is_empty() {
            f.write_str("; NOT enforced: ")?;
            let gaps: Vec<String> = self
                .not_enforced
                .iter()
                .map(|g| format!("{} ({})", g.feature.as_str(), g.reason))
                .collect();
            f.write_str(&gaps.join(", "))?;
        }
        write!(f, "; core dumps off")?;
        if let Some(n) = self.limits.nofile {
            write!(f, ", nofile {n}")?;
        }
        if let Some(n) = self.limits.nproc {
            write!(f, ", nproc {n}")?;
        }
        if self.limits.no_new_privs {
            f.write_str(", no_new_privs")?;
        }
        Ok(())
    }
}

/// What the kernel offers, for `check` and for the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Support {
    /// `None`: Landlock is unavailable.
    pub abi: Option<u32>,
    /// Why it is unavailable.
    pub reason: Option<String>,
}

/// Asks the kernel which Landlock ABI it offers.
pub fn support() -> Support {
    match crate::sys::sandbox::landlock_abi() {
        Ok(v) => Support {
            abi: Some(v),
            reason: None,
        },
        Err(e) => Support {
            abi: None,
            reason: Some(match e.raw_os_error() {
                Some(libc::ENOSYS) => "the kernel is built without Landlock".to_owned(),
                Some(libc::EOPNOTSUPP) => {
                    "Landlock is built in but not enabled (add landlock to the lsm= boot parameter)"
                        .to_owned()
                }
                _ => format!("the Landlock version query failed: {e}"),
            }),
        },
    }
}

/// Restrictions a kernel with `abi` cannot enforce (`None`: no Landlock at all).
pub fn gaps(abi: Option<u32>, reason: Option<&str>) -> Vec<Gap> {
    Feature::ALL
        .iter()
        .filter(|f| abi.is_none_or(|a| a < f.abi()))
        .map(|&feature| Gap {
            feature,
            reason: match abi {
                None => reason.unwrap_or("Landlock is unavailable").to_owned(),
                Some(a) => format!("needs ABI {}, the kernel has {a}", feature.abi()),
            },
        })
        .collect()
}

/// Why the sandbox could not be planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{why} {}: {source}", path.display())]
    Path {
        why: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "sandbox.landlock = \"required\", but the sandbox cannot be fully enforced: {0}; \
         use a kernel with Landlock ABI {TESTED_ABI} or set sandbox.landlock = \"best-effort\""
    )]
    NotEnforced(String),
    #[error("cannot build the Landlock ruleset: {0}")]
    Landlock(String),
}

#[cfg(test)]
mod tests;
