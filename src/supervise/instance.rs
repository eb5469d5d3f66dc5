//! One instance only: an `flock` on `STATE/warden.lock` held for the supervisor's whole life,
//! a PID file that records the process start time (so a reused PID is never mistaken for the
//! supervisor), and `STATE/status.json`, what the supervisor tells `status`, `up` and `stop`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::sys::process as sysp;

/// File names inside the state directory.
pub const LOCK_FILE: &str = "warden.lock";
pub const PID_FILE: &str = "warden.pid";
pub const STATUS_FILE: &str = "status.json";
/// Parent of the runtime directories of supervisors started as root.
pub const RUN_DIR: &str = "/run/warden";

/// A process, identified by pid and start time.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start_ticks: u64,
}

impl Proc {
    /// The process with this pid, as it is now.
    pub fn of(pid: i32) -> io::Result<Self> {
        Ok(Self {
            pid,
            start_ticks: sysp::start_ticks(pid)?,
        })
    }

    /// Whether this very process is still alive (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        sysp::is_same_process(self.pid, self.start_ticks) && sysp::state(self.pid) != Some('Z')
    }
}

/// The supervisor's lifecycle state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Starting,
    Running,
    Restarting,
    Stopping,
    Stopped,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }
}

/// `STATE/status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub state: State,
    pub supervisor: Proc,
    pub service: Option<Proc>,
    pub user: String,
    pub uid: u32,
    /// Unix time the current service process started.
    pub since: Option<u64>,
    pub restarts: u32,
    pub ready: bool,
    pub last_exit: Option<String>,
    pub message: Option<String>,
    /// What the sandbox enforces for the current service process.
    #[serde(default)]
    pub sandbox: Option<Box<crate::sandbox::Status>>,
    /// Bytes of the service's output that could not be written to its log (a full disk).
    #[serde(default)]
    pub log_dropped_bytes: u64,
}

/// The held lock; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Paths of one deployment's instance files.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The runtime directory of a deployment, created if needed: `/run/warden/NAME` when warden
    /// runs as root (out of reach of the service, which owns its state directory), otherwise
    /// `STATE/.warden`.
    pub fn for_policy(policy: &Policy) -> io::Result<Self> {
        let dir = Self::runtime_dir(policy, nix::unistd::Uid::effective().is_root());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)?;
        let m = std::fs::symlink_metadata(&dir)?;
        if !m.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Self::new(&dir))
    }

    /// Where a running supervisor keeps its files, for readers (`status`, `stop`, `up`): the
    /// root location if a supervisor ever used it, else the rootless one.
    pub fn find(policy: &Policy) -> Self {
        let system = Self::runtime_dir(policy, true);
        if system.join(LOCK_FILE).exists() {
            Self::new(&system)
        } else {
            Self::new(&Self::runtime_dir(policy, false))
        }
    }

    fn runtime_dir(policy: &Policy, root: bool) -> PathBuf {
        if root {
            Path::new(RUN_DIR).join(&policy.service.name)
        } else {
            policy.state_dir.join(".warden")
        }
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    pub fn pid_path(&self) -> PathBuf {
        self.dir.join(PID_FILE)
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.join(STATUS_FILE)
    }

    fn open_lock(&self) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.lock_path())
    }

    /// Takes the lock without waiting. `Ok(None)`: another supervisor holds it.
    pub fn try_lock(&self) -> io::Result<Option<Lock>> {
        let file = self.open_lock()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a supervisor holds the lock now (the lock file is never created by this check).
    pub fn is_locked(&self) -> io::Result<bool> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.lock_path())
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Writes the PID file: `PID START_TICKS`.
    pub fn write_pid(&self, p: Proc) -> io::Result<()> {
        atomic_write(
            &self.pid_path(),
            format!("{} {}\n", p.pid, p.start_ticks).as_bytes(),
        )
    }

    /// Reads the PID file, if there is one.
    pub fn read_pid(&self) -> io::Result<Option<Proc>> {
        let text = match std::fs::read_to_string(self.pid_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut it = text.split_whitespace().map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(pid)), Some(Ok(start_ticks))) => Ok(Some(Proc {
                pid: i32::try_from(pid).map_err(|_| bad_pid(&self.pid_path()))?,
                start_ticks,
            })),
            _ => Err(bad_pid(&self.pid_path())),
        }
    }

    pub fn remove_pid(&self) -> io::Result<()> {
        match std::fs::remove_file(self.pid_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn write_status(&self, s: &Status) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(s).map_err(io::Error::other)?;
        text.push(b'\n');
        atomic_write(&self.status_path(), &text)
    }

    pub fn read_status(&self) -> io::Result<Option<Status>> {
        match std::fs::read(self.status_path()) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.status_path().display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn bad_pid(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is not a warden PID file", p.display()),
    )
}

/// Writes `bytes` to a temp file beside `path`, then renames it over `path`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Unix time now, in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let f = Files::new(d.path());
        assert!(!f.is_locked().unwrap());
        let held = f.try_lock().unwrap().expect("first lock");
        assert!(f.is_locked().unwrap());
        assert!(f.try_lock().unwrap().is_none());
        drop(held);
        assert!(!f.is_locked().unwrap());
    }

    #[test]
    fn pid_file_round_trips_and_detects_reuse() {
        let d = tempfile::tempdir().unwrap();
        let f = Files::new(d.path());
        assert_eq!(f.read_pid().unwrap(), None);
        let me = Proc::of(std::process::id() as i32).unwrap();
        f.write_pid(me).unwrap();
        assert_eq!(f.read_pid().unwrap(), Some(me));
        assert!(me.alive());
        // The same pid with another start time is another process.
        assert!(
            !Proc {
                start_ticks: me.start_ticks + 1,
                ..me
            }
            .alive()
        );
        std::fs::write(f.pid_path(), "garbage").unwrap();
        assert!(f.read_pid().is_err());
    }
}
