//! Talking to a supervisor from outside: `up` starts one in the background and waits until the
//! service is ready, `stop` ends it, `status` reports on it. The lock says whether a
//! supervisor is alive; the PID file's start time guards against a reused PID.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Serialize;

use super::instance::{Files, State, Status};
use super::sockets;
use crate::policy::Policy;
use crate::sys::process as sysp;

/// The supervisor's own messages when started by `up`.
pub const SUPERVISOR_LOG: &str = "supervisor.log";

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub state: String,
    pub supervisor_pid: Option<i32>,
    pub service_pid: Option<i32>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub uptime_seconds: Option<u64>,
    pub restarts: u32,
    pub ready: bool,
    pub listening: Vec<SocketAddr>,
    pub last_exit: Option<String>,
    pub message: Option<String>,
    /// What the sandbox enforces for the running service.
    pub sandbox: Option<crate::sandbox::Status>,
    /// Bytes of output that could not be written to the log (a full disk).
    pub log_dropped_bytes: u64,
    pub warnings: Vec<String>,
}

/// Reads the supervisor's state.
pub fn status(policy: &Policy) -> io::Result<Report> {
    let files = Files::find(policy);
    let locked = files.is_locked()?;
    let st = files.read_status()?;
    let mut r = Report {
        name: policy.service.name.clone(),
        state: "stopped".into(),
        supervisor_pid: None,
        service_pid: None,
        user: st.as_ref().map(|s| s.user.clone()),
        uid: st.as_ref().map(|s| s.uid),
        uptime_seconds: None,
        restarts: st.as_ref().map_or(0, |s| s.restarts),
        ready: false,
        listening: Vec::new(),
        last_exit: st.as_ref().and_then(|s| s.last_exit.clone()),
        message: st.as_ref().and_then(|s| s.message.clone()),
        sandbox: None,
        log_dropped_bytes: st.as_ref().map_or(0, |s| s.log_dropped_bytes),
        warnings: Vec::new(),
    };
    if !locked {
        if st.as_ref().is_some_and(|s| s.state == State::Failed) {
            r.state = "failed".into();
        }
        if let Some(p) = files.read_pid()? {
            r.warnings.push(format!(
                "stale PID file {} (pid {} is not a running supervisor)",
                files.pid_path().display(),
                p.pid
            ));
        }
        return Ok(r);
    }
    let Some(st) = st else {
        r.state = "starting".into();
        return Ok(r);
    };
    r.state = st.state.as_str().into();
    r.supervisor_pid = Some(st.supervisor.pid);
    r.ready = st.ready;
    if let Some(svc) = st.service.filter(|p| p.alive()) {
        r.service_pid = Some(svc.pid);
        r.sandbox = st.sandbox.clone().map(|s| *s);
        r.uptime_seconds = st.since.map(|s| super::instance::now().saturating_sub(s));
        r.listening = sockets::listening(&sysp::descendants(svc.pid));
        for a in &r.listening {
            if !listen_allowed(&policy.service.listen, *a) {
                r.warnings.push(format!(
                    "listening on {a}, which service.listen does not allow{}",
                    if a.ip().is_unspecified() {
                        " (every network interface)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    Ok(r)
}

fn listen_allowed(allowed: &[SocketAddr], a: SocketAddr) -> bool {
    allowed.iter().any(|l| {
        l.port() == a.port()
            && (l.ip() == a.ip() || matches!((l.ip(), a.ip()), (IpAddr::V4(x), IpAddr::V6(y)) if y.to_ipv4_mapped() == Some(x)))
    })
}

/// The result of `stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running; a stale PID file (whose process was left alone) was removed.
    NotRunning { stale_pid: Option<i32> },
    /// It stopped; `forced` when SIGKILL was needed.
    Stopped { supervisor_pid: i32, forced: bool },
}

/// Why `stop` could not stop it.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error(
        "cannot signal the supervisor (pid {pid}): {source}; run as root or as the user that started it"
    )]
    Signal { pid: i32, source: nix::Error },
    #[error("a process holds {} but the PID file does not name a live supervisor; is another warden running with this state directory?", .0.display())]
    UnknownHolder(PathBuf),
    #[error("the supervisor (pid {0}) did not exit even after SIGKILL")]
    Stuck(i32),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Stops the supervisor and its service: SIGTERM to the supervisor, which stops the service
/// within stop-timeout (SIGKILL after that); SIGKILL to both if the supervisor does not exit.
pub fn stop(policy: &Policy) -> Result<Stopped, StopError> {
    let files = Files::find(policy);
    if !files.is_locked()? {
        let stale = files.read_pid().ok().flatten().map(|p| p.pid);
        files.remove_pid()?;
        return Ok(Stopped::NotRunning { stale_pid: stale });
    }
    let sup = files
        .read_pid()?
        .filter(super::instance::Proc::alive)
        .ok_or_else(|| StopError::UnknownHolder(files.lock_path()))?;
    let pid = Pid::from_raw(sup.pid);
    kill(pid, Signal::SIGTERM).map_err(|source| StopError::Signal {
        pid: sup.pid,
        source,
    })?;
    let grace = policy.service.stop_timeout.0 + Duration::from_secs(5);
    if wait_unlocked(&files, grace)? {
        files.remove_pid()?;
        return Ok(Stopped::Stopped {
            supervisor_pid: sup.pid,
            forced: false,
        });
    }
    let service = files
        .read_status()?
        .and_then(|s| s.service)
        .filter(super::instance::Proc::alive);
    let _ = kill(pid, Signal::SIGKILL);
    if let Some(svc) = service {
        let _ = killpg(Pid::from_raw(svc.pid), Signal::SIGKILL);
    }
    if wait_unlocked(&files, Duration::from_secs(5))? {
        files.remove_pid()?;
        Ok(Stopped::Stopped {
            supervisor_pid: sup.pid,
            forced: true,
        })
    } else {
        Err(StopError::Stuck(sup.pid))
    }
}

fn wait_unlocked(files: &Files, d: Duration) -> io::Result<bool> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if !files.is_locked()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(!files.is_locked()?)
}

/// The result of `up`.
#[derive(Debug, Clone)]
pub enum Up {
    Started(Status),
    AlreadyRunning { supervisor_pid: Option<i32> },
}

/// Why `up` failed; carries the last lines of the logs.
#[derive(Debug, thiserror::Error)]
#[error("{reason}{}", tail(.log_tail))]
pub struct UpError {
    pub reason: String,
    pub log_tail: Vec<String>,
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nlast log lines:");
    for l in lines {
        s.push_str("\n  | ");
        s.push_str(&crate::term::escape(l));
    }
    s
}

/// Starts `warden run` in the background (its own session) and waits until the service is
/// ready, the supervisor gives up, or the readiness timeout passes.
pub fn up(policy: &Policy, exe: &Path) -> Result<Up, UpError> {
    let fail = |reason: String| UpError {
        reason,
        log_tail: Vec::new(),
    };
    let files = Files::for_policy(policy)
        .map_err(|e| fail(format!("cannot create the runtime directory: {e}")))?;
    if files.is_locked().map_err(|e| fail(e.to_string()))? {
        return Ok(Up::AlreadyRunning {
            supervisor_pid: files.read_pid().ok().flatten().map(|p| p.pid),
        });
    }
    let sup_log = files.dir.join(SUPERVISOR_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&sup_log)
        .map_err(|e| fail(format!("cannot open {}: {e}", sup_log.display())))?;
    let log2 = log.try_clone().map_err(|e| fail(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("-c").arg(&policy.file).arg("run").arg("--no-echo");
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    crate::sys::process::on_spawn_setsid(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", exe.display())))?;
    let pid = child.id() as i32;
    let timeout = policy
        .service
        .ready
        .as_ref()
        .map_or(Duration::from_secs(10), |r| r.timeout.0)
        + Duration::from_secs(10);
    let end = Instant::now() + timeout;
    let service_log = policy.logs_dir.join(format!("{}.log", policy.service.name));
    let tails = || {
        let mut t = last_lines(&sup_log, 10);
        t.extend(last_lines(&service_log, 10));
        t
    };
    while Instant::now() < end {
        if let Ok(Some(code)) = child.try_wait() {
            return Err(UpError {
                reason: format!("the supervisor exited ({code})"),
                log_tail: tails(),
            });
        }
        if let Ok(Some(st)) = files.read_status()
            && st.supervisor.pid == pid
        {
            match st.state {
                State::Running if st.ready => return Ok(Up::Started(st)),
                State::Failed => {
                    return Err(UpError {
                        reason: st.message.unwrap_or_else(|| "the service failed".into()),
                        log_tail: tails(),
                    });
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(UpError {
        reason: format!(
            "not ready within {}s; it is still starting (see `warden status`)",
            timeout.as_secs()
        ),
        log_tail: tails(),
    })
}

/// The last `n` lines of a text file (empty if unreadable).
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_matching() {
        let allowed: Vec<SocketAddr> = vec!["127.0.0.1:7860".parse().unwrap()];
        assert!(listen_allowed(&allowed, "127.0.0.1:7860".parse().unwrap()));
        assert!(listen_allowed(
            &allowed,
            "[::ffff:127.0.0.1]:7860".parse().unwrap()
        ));
        assert!(!listen_allowed(&allowed, "0.0.0.0:7860".parse().unwrap()));
        assert!(!listen_allowed(&allowed, "127.0.0.1:7861".parse().unwrap()));
    }
}
