//! `warden up`, `stop` and `restart`.

use anyhow::{Context, Result};

use super::Outcome;
use crate::policy::Policy;
use crate::supervise::control::{self, Stopped, Up};

pub fn up(policy: &Policy) -> Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find warden's own executable")?;
    match control::up(policy, &exe)? {
        Up::AlreadyRunning { supervisor_pid } => {
            let pid = supervisor_pid.map_or_else(|| "unknown".into(), |p| p.to_string());
            eprintln!(
                "{} is already running (supervisor pid {pid})",
                policy.service.name
            );
        }
        Up::Started(st) => {
            let svc = st.service.map_or_else(|| "?".into(), |p| p.pid.to_string());
            eprintln!(
                "started {}: service pid {svc} as {} (uid {}), supervisor pid {}",
                st.name, st.user, st.uid, st.supervisor.pid
            );
        }
    }
    Ok(Outcome::Clean)
}

pub fn stop(policy: &Policy) -> Result<Outcome> {
    match control::stop(policy)? {
        Stopped::NotRunning { stale_pid: None } => {
            eprintln!("{} is not running", policy.service.name)
        }
        Stopped::NotRunning {
            stale_pid: Some(pid),
        } => eprintln!(
            "{} is not running (removed a stale PID file naming pid {pid}; that process was left alone)",
            policy.service.name
        ),
        Stopped::Stopped {
            supervisor_pid,
            forced,
        } => eprintln!(
            "stopped {} (supervisor pid {supervisor_pid}){}",
            policy.service.name,
            if forced { " with SIGKILL" } else { "" }
        ),
    }
    Ok(Outcome::Clean)
}

pub fn restart(policy: &Policy) -> Result<Outcome> {
    stop(policy)?;
    up(policy)
}
