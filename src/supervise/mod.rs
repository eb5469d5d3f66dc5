//! The supervisor: preflight, the clean environment, the account switch, one instance only,
//! restarts with backoff, graceful stop, and the status others read.
//!
//! `run` is the supervisor itself (foreground, for systemd and containers); `up`, `stop` and
//! `status` talk to it through the lock and the files in its runtime directory.

pub mod account;
pub mod control;
pub mod env;
pub mod instance;
pub mod preflight;
pub mod ready;
pub mod restart;
pub mod sockets;
pub mod spawn;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::logs::capture::Capture;
use crate::policy::Policy;
use crate::sys::process as sysp;
use instance::{Files, Proc, State, Status};
use restart::{Decision, Restarter};

/// Why the supervisor could not start or keep the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refusing to start {name}:\n{}", list(.refusals))]
    Refused {
        name: String,
        refusals: Vec<preflight::Refusal>,
    },
    #[error(transparent)]
    Account(#[from] account::AccountError),
    #[error("{name} is already running (supervisor pid {pid})")]
    AlreadyRunning { name: String, pid: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Check(String),
    #[error(transparent)]
    Logs(#[from] crate::logs::Error),
    #[error("cannot plan the sandbox: {0}")]
    Sandbox(#[from] crate::sandbox::Error),
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: spawn::SpawnError,
    },
}

fn list(r: &[preflight::Refusal]) -> String {
    r.iter()
        .map(|r| format!("  - {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// A check that must pass before every start (integrity verification, model scan).
pub trait PreStart {
    /// A short name shown in progress messages.
    fn name(&self) -> &str;
    /// `Err(reason)` refuses the start.
    fn check(&self, policy: &Policy) -> Result<(), String>;
}

/// Runs the pre-start checks in order; the first refusal wins.
fn run_checks(checks: &[&dyn PreStart], policy: &Policy) -> Result<(), Error> {
    for c in checks {
        eprintln!("warden: {}: checking", c.name());
        c.check(policy)
            .map_err(|e| Error::Check(format!("{}: {e}", c.name())))?;
    }
    Ok(())
}

/// How `run` was invoked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Copy the service's output to warden's stdout as well as the log file.
    pub echo: bool,
}

/// The signals the supervisor handles itself.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Runs the service in the foreground until it stops for good. Returns warden's exit code.
pub fn run(policy: &Policy, opts: &Options, checks: &[&dyn PreStart]) -> Result<u8, Error> {
    // Block the handled signals before anything can start a thread (the checks use a thread
    // pool; the log pipeline has its own). A thread created with them unblocked could take a
    // SIGTERM meant for the supervisor: its default action would kill warden without stopping
    // the service, and as PID 1 the kernel would drop it. From here on they are only received
    // through wait_signal.
    handled_signals().thread_block().map_err(|e| Error::Io {
        what: "cannot block signals",
        path: PathBuf::new(),
        source: e.into(),
    })?;
    let name = policy.service.name.clone();
    let acct = account::resolve(policy)?;
    let env = acct.environment(policy);
    let refusals = preflight::check(policy, &env);
    if !refusals.is_empty() {
        return Err(Error::Refused { name, refusals });
    }
    let files = Files::for_policy(policy).map_err(io_err(
        "cannot create the runtime directory",
        &policy.state_dir,
    ))?;
    let Some(lock) = files
        .try_lock()
        .map_err(io_err("cannot lock", &files.lock_path()))?
    else {
        let pid = files
            .read_pid()
            .ok()
            .flatten()
            .map_or_else(|| "unknown".into(), |p| p.pid.to_string());
        return Err(Error::AlreadyRunning { name, pid });
    };
    account::prepare_dirs(policy, &acct, &env)?;
    run_checks(checks, policy)?;

    // A stop asked for during the checks: do not start at all.
    if let Ok(Some(sig)) = sysp::wait_signal(&handled_signals(), Duration::ZERO)
        && sig != Signal::SIGCHLD
    {
        eprintln!("warden: {sig} received before {name} started: not starting it");
        return Ok(0);
    }
    // Orphans of the service are re-parented to warden, which reaps them.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    if std::process::id() == 1 {
        eprintln!("warden: running as PID 1: forwarding SIGTERM/SIGINT and reaping orphans");
    }
    let me = Proc::of(std::process::id() as i32)
        .map_err(io_err("cannot read", Path::new("/proc/self/stat")))?;
    files
        .write_pid(me)
        .map_err(io_err("cannot write", &files.pid_path()))?;

    let log_cfg =
        crate::logs::Config::from_policy(policy, acct.credentials.as_ref().map(|c| (c.uid, c.gid)));
    let capture = Capture::start(&log_cfg, opts.echo)?;

    let mut sup = Supervisor {
        policy,
        checks,
        files: &files,
        spec: service_spec(policy, &acct, &env, me.pid)?,
        status: Status {
            name: name.clone(),
            state: State::Starting,
            supervisor: me,
            service: None,
            user: acct.user.clone(),
            uid: acct.uid,
            since: None,
            restarts: 0,
            ready: false,
            last_exit: None,
            message: None,
            sandbox: None,
            log_dropped_bytes: 0,
        },
        capture: &capture,
        signals: handled_signals(),
    };
    let result = sup.main_loop();
    let _ = files.remove_pid();
    drop(capture);
    drop(lock);
    result
}

/// What the spawn helper gets to start the service as `run` would: the program, the clean
/// environment, the account, the limits and the sandbox plan.
pub fn service_spec(
    policy: &Policy,
    acct: &account::Account,
    env: &std::collections::BTreeMap<String, String>,
    supervisor: i32,
) -> Result<spawn::Spec, Error> {
    let env: Vec<(String, String)> = env.clone().into_iter().collect();
    let program = &policy.service.command[0];
    let resolved = spawn::resolve_program(program, &policy.workdir, &env).ok();
    let plan = crate::sandbox::plan(policy, resolved.as_deref(), &env.iter().cloned().collect())?;
    Ok(spawn::Spec {
        program: program.clone(),
        args: policy.service.command[1..].to_vec(),
        env,
        workdir: policy.workdir.clone(),
        credentials: acct.credentials.clone(),
        umask: 0o077,
        supervisor,
        nofile: policy.sandbox.nofile,
        nproc: policy.sandbox.nproc,
        sandbox: Some(plan),
        payload: None,
    })
}

struct Supervisor<'a> {
    policy: &'a Policy,
    checks: &'a [&'a dyn PreStart],
    files: &'a Files,
    spec: spawn::Spec,
    status: Status,
    capture: &'a Capture,
    signals: SigSet,
}

/// How one service process ended.
enum Ended {
    Exited(WaitStatus),
    StopRequested(Signal),
}

impl Supervisor<'_> {
    fn save(&self) {
        if let Err(e) = self.files.write_status(&self.status) {
            eprintln!(
                "warden: warning: cannot write {}: {e}",
                self.files.status_path().display()
            );
        }
    }

    fn main_loop(&mut self) -> Result<u8, Error> {
        let mut restarter = Restarter::new(&self.policy.service.restart);
        let mut first = true;
        loop {
            let (out, err) = self
                .capture
                .stdio()
                .map_err(io_err("cannot create the log pipe", &self.policy.logs_dir))?;
            let started = match spawn::spawn(&self.spec, out, err) {
                Ok(c) => c,
                Err(e) if first => {
                    self.status.state = State::Failed;
                    self.status.message = Some(e.to_string());
                    self.save();
                    return Err(Error::Spawn {
                        name: self.status.name.clone(),
                        source: e,
                    });
                }
                Err(e) => {
                    eprintln!("warden: cannot restart {}: {e}", self.status.name);
                    self.status.state = State::Failed;
                    self.status.message = Some(e.to_string());
                    self.save();
                    return Ok(1);
                }
            };
            first = false;
            let pid = Pid::from_raw(started.child.id() as i32);
            if let Some(sb) = &started.sandbox {
                eprintln!("warden: sandbox: {sb}");
            }
            self.status.sandbox = started.sandbox.map(Box::new);
            drop(started.child);
            self.status.service = Proc::of(pid.as_raw()).ok();
            self.status.since = Some(instance::now());
            self.status.state = State::Starting;
            self.status.ready = false;
            self.save();
            eprintln!(
                "warden: started {} (pid {pid}) as {} (uid {})",
                self.status.name, self.status.user, self.status.uid
            );

            let ended = self.watch(pid);
            match ended {
                Ended::StopRequested(sig) => {
                    eprintln!("warden: {sig} received: stopping {}", self.status.name);
                    self.status.state = State::Stopping;
                    self.save();
                    let ws = self.stop_service(pid);
                    self.status.last_exit = Some(describe(ws));
                    self.status.state = State::Stopped;
                    self.status.service = None;
                    self.save();
                    return Ok(0);
                }
                Ended::Exited(ws) => {
                    let desc = describe(ws);
                    eprintln!("warden: {} {desc}", self.status.name);
                    self.status.last_exit = Some(desc);
                    self.status.service = None;
                    // Leftovers in the service's process group go with it.
                    let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
                    let success = matches!(ws, WaitStatus::Exited(_, 0));
                    match restarter.decide(success, Instant::now()) {
                        Decision::Exit => {
                            self.status.state = if success {
                                State::Stopped
                            } else {
                                State::Failed
                            };
                            self.save();
                            return Ok(exit_code(ws));
                        }
                        Decision::GiveUp => {
                            self.status.state = State::Failed;
                            self.status.message = Some(format!(
                                "gave up after {} restarts within {}",
                                self.policy.service.restart.max, self.policy.service.restart.within
                            ));
                            self.save();
                            eprintln!(
                                "warden: {}: {}",
                                self.status.name,
                                self.status.message.as_deref().unwrap_or("")
                            );
                            return Ok(1);
                        }
                        Decision::RestartAfter(delay) => {
                            self.status.restarts = restarter.total;
                            self.status.state = State::Restarting;
                            self.save();
                            eprintln!(
                                "warden: restarting {} in {:.1}s",
                                self.status.name,
                                delay.as_secs_f64()
                            );
                            if let Some(sig) = self.sleep(delay) {
                                eprintln!(
                                    "warden: {sig} received while waiting to restart: stopping"
                                );
                                self.status.state = State::Stopped;
                                self.save();
                                return Ok(0);
                            }
                            // The weights are checked again before every start, restarts too.
                            if let Err(e) = run_checks(self.checks, self.policy) {
                                eprintln!("warden: not restarting {}: {e}", self.status.name);
                                self.status.state = State::Failed;
                                self.status.message = Some(e.to_string());
                                self.save();
                                return Ok(1);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Waits for the service to exit or a stop signal, reaping orphans and tracking readiness.
    fn watch(&mut self, pid: Pid) -> Ended {
        let exited = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(probe) = self
            .policy
            .service
            .ready
            .as_ref()
            .and_then(ready::Probe::from_policy)
        {
            let deadline = Instant::now()
                + self
                    .policy
                    .service
                    .ready
                    .as_ref()
                    .map_or(Duration::from_secs(60), |r| r.timeout.0);
            let gone = exited.clone();
            std::thread::spawn(move || {
                let _ = tx.send(probe.wait(deadline, || gone.load(Ordering::Relaxed)));
            });
        } else {
            let _ = tx.send(Ok(()));
        }
        let result = loop {
            if let Ok(Some(sig)) = sysp::wait_signal(&self.signals, Duration::from_millis(200))
                && sig != Signal::SIGCHLD
            {
                break Ended::StopRequested(sig);
            }
            if let Some(ws) = reap(pid) {
                break Ended::Exited(ws);
            }
            match rx.try_recv() {
                Ok(Ok(())) => {
                    self.status.ready = true;
                    self.status.state = State::Running;
                    self.save();
                    eprintln!("warden: {} is ready", self.status.name);
                }
                Ok(Err(e)) => {
                    eprintln!(
                        "warden: {} did not become ready: {e}; stopping it",
                        self.status.name
                    );
                    self.status.message = Some(format!("not ready: {e}"));
                    let ws = self.stop_service(pid);
                    break Ended::Exited(ws);
                }
                Err(_) => {}
            }
            let dropped = self.capture.dropped_bytes();
            if dropped != self.status.log_dropped_bytes {
                self.status.log_dropped_bytes = dropped;
                self.save();
            }
        };
        exited.store(true, Ordering::Relaxed);
        result
    }

    /// SIGTERM to the process group, wait up to stop-timeout, then SIGKILL; returns how the
    /// service ended.
    fn stop_service(&self, pid: Pid) -> WaitStatus {
        let _ = nix::sys::signal::killpg(pid, Signal::SIGTERM);
        let deadline = Instant::now() + self.policy.service.stop_timeout.0;
        let mut status = None;
        while Instant::now() < deadline {
            // Reap everything, not only the service: a member of its group that outlived it was
            // re-parented to warden (subreaper, or PID 1 in a container) and, unreaped, would
            // keep the group alive until the SIGKILL.
            if let Some(ws) = reap(pid) {
                status = Some(ws);
            }
            if status.is_some() && !group_alive(pid) {
                return status.unwrap_or(WaitStatus::StillAlive);
            }
            let _ = sysp::wait_signal(&self.signals, Duration::from_millis(50));
        }
        eprintln!(
            "warden: {} did not stop within {}: sending SIGKILL",
            self.status.name, self.policy.service.stop_timeout
        );
        let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
        let hard = Instant::now() + Duration::from_secs(10);
        while status.is_none() && Instant::now() < hard {
            status = reap(pid);
            if status.is_none() {
                let _ = sysp::wait_signal(&self.signals, Duration::from_millis(50));
            }
        }
        status.unwrap_or(WaitStatus::StillAlive)
    }

    /// Sleeps, still reaping orphans; returns a stop signal if one arrived.
    fn sleep(&self, d: Duration) -> Option<Signal> {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Ok(Some(sig)) =
                sysp::wait_signal(&self.signals, left.min(Duration::from_millis(200)))
                && sig != Signal::SIGCHLD
            {
                return Some(sig);
            }
            let _ = reap(Pid::from_raw(-1));
        }
        None
    }
}

/// Reaps every exited child; returns the status of `pid` if it was among them.
fn reap(pid: Pid) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(ws) => {
                if ws.pid() == Some(pid) {
                    found = Some(ws);
                }
            }
        }
    }
}

/// Whether any process is left in the process group.
fn group_alive(pgid: Pid) -> bool {
    nix::sys::signal::killpg(pgid, None).is_ok()
}

fn describe(ws: WaitStatus) -> String {
    match ws {
        WaitStatus::Exited(_, c) => format!("exited with code {c}"),
        WaitStatus::Signaled(_, s, core) => format!(
            "was killed by {s}{}",
            if core { " (core dumped)" } else { "" }
        ),
        other => format!("ended ({other:?})"),
    }
}

fn exit_code(ws: WaitStatus) -> u8 {
    match ws {
        WaitStatus::Exited(_, c) => u8::try_from(c).unwrap_or(1),
        WaitStatus::Signaled(_, s, _) => 128u8.saturating_add(s as u8),
        _ => 1,
    }
}

/// Runs the spawn helper (the hidden `__spawn-service` command). Never returns.
pub fn spawn_helper() -> ! {
    spawn::helper_main(None)
}

/// Stdio for the service: both stdout and stderr go into the capture pipe.
pub type ServiceStdio = (Stdio, Stdio);
