//! Starting the service: the supervisor runs `/proc/self/exe __spawn-service`, a fresh
//! single-threaded helper that reads a [`Spec`] on stdin, drops privileges in the verified order
//! (groups, gid, bounding set, uid, capabilities, death signal, umask, no_new_privs), and execs
//! the service. Between the drop and the exec it applies the sandbox (the Landlock ruleset is
//! built before the drop, as root, and enforced after `no_new_privs`). A close-on-exec report
//! pipe on fd 3 tells the supervisor what the sandbox enforces (a `STATUS {json}` line) and
//! whether the exec happened (EOF) or why not (`ERROR message`).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

use crate::sandbox;
use crate::sys::process as sysp;

/// The descriptor the helper writes its failure report to.
pub const REPORT_FD: i32 = 3;

/// Exit code of the helper when it could not exec the service.
pub const SPAWN_FAILED: i32 = 127;

/// The account to switch to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// The full supplementary group list (what initgroups would set).
    pub groups: Vec<u32>,
}

/// Everything the helper needs to start the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    /// `None`: stay as the current user (warden was not started as root).
    pub credentials: Option<Credentials>,
    pub umask: u32,
    /// The supervisor's pid: the helper exits if it was re-parented before the death signal
    /// took hold.
    pub supervisor: i32,
    /// RLIMIT_NOFILE and RLIMIT_NPROC, when the policy sets them.
    pub nofile: Option<u64>,
    pub nproc: Option<u64>,
    /// The sandbox to apply between the drop and the exec.
    #[serde(default)]
    pub sandbox: Option<sandbox::Plan>,
    /// Data for a helper that runs code of its own instead of the exec (the probe).
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// A started service (or probe): the process and what its sandbox enforces.
#[derive(Debug)]
pub struct Started {
    pub child: Child,
    pub sandbox: Option<sandbox::Status>,
}

/// What a helper runs instead of `execve`, after the drop and the sandbox (the probe's
/// attacks). It must not return on success.
pub type After = fn(&Spec) -> Result<std::convert::Infallible, String>;

/// Why the service could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start the spawn helper {}: {source}", exe.display())]
    Helper {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// Starts the helper with the given stdout and stderr; returns once the service has been
/// exec'd (or with the helper's reason why it was not).
pub fn spawn(spec: &Spec, stdout: Stdio, stderr: Stdio) -> Result<Started, SpawnError> {
    spawn_helper("__spawn-service", spec, stdout, stderr)
}

/// Starts `/proc/self/exe HELPER` (a hidden command that ends in [`helper_main`]).
pub fn spawn_helper(
    helper_command: &str,
    spec: &Spec,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<Started, SpawnError> {
    let exe = PathBuf::from("/proc/self/exe");
    let helper = |source| SpawnError::Helper {
        exe: exe.clone(),
        source,
    };
    let (report_r, report_w) = std::os::unix::net::UnixStream::pair().map_err(helper)?;
    let report_w: OwnedFd = report_w.into();
    let w = report_w.as_raw_fd();
    let mut cmd = Command::new(&exe);
    cmd.arg(helper_command)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .env_clear()
        .process_group(0);
    sysp::on_spawn_unblock_and_dup(&mut cmd, w, REPORT_FD);
    let mut child = cmd.spawn().map_err(helper)?;
    drop(report_w);
    drop(cmd);
    let json = serde_json::to_vec(spec).expect("a spec always serializes");
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that died early shows up as a report or an exit status below.
        let _ = stdin.write_all(&json);
    }
    let mut report = String::new();
    let mut r = report_r;
    let _ = r.read_to_string(&mut report);
    match parse_report(&report) {
        Ok(sandbox) => Ok(Started { child, sandbox }),
        Err(msg) => {
            let _ = child.wait();
            Err(SpawnError::Refused(msg))
        }
    }
}

const STATUS: &str = "STATUS ";
const ERROR: &str = "ERROR ";

/// Reads the helper's report: `STATUS {json}` lines, then either nothing (the exec happened) or
/// `ERROR message` (to the end).
pub fn parse_report(report: &str) -> Result<Option<sandbox::Status>, String> {
    let mut status = None;
    let mut rest = report;
    while let Some(line_end) = rest
        .strip_prefix(STATUS)
        .map(|r| r.find('\n').unwrap_or(r.len()))
    {
        let json = &rest[STATUS.len()..STATUS.len() + line_end];
        status = Some(
            serde_json::from_str(json)
                .map_err(|e| format!("bad sandbox status from the helper: {e}"))?,
        );
        rest = rest[STATUS.len() + line_end..].trim_start_matches('\n');
    }
    if rest.is_empty() {
        Ok(status)
    } else {
        Err(rest
            .strip_prefix(ERROR)
            .unwrap_or(rest)
            .trim_end()
            .to_owned())
    }
}

/// The helper's side: never returns. Reports a failure on [`REPORT_FD`] and exits 127.
/// `after`, when given, runs instead of the exec.
pub fn helper_main(after: Option<After>) -> ! {
    let mut input = Vec::new();
    let result = std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the spawn spec: {e}"))
        .and_then(|_| {
            serde_json::from_slice::<Spec>(&input).map_err(|e| format!("bad spawn spec: {e}"))
        })
        .and_then(|spec| exec(&spec, after));
    let msg = match result {
        Ok(never) => match never {},
        Err(m) => m,
    };
    sysp::write_fd(REPORT_FD, format!("{ERROR}{msg}").as_bytes());
    std::process::exit(SPAWN_FAILED);
}

fn exec(spec: &Spec, after: Option<After>) -> Result<std::convert::Infallible, String> {
    fn ctx(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
        move |e| format!("{what}: {e}")
    }
    sysp::reset_signals().map_err(ctx("cannot reset signals"))?;
    // Mark everything above the report pipe close-on-exec, and the report pipe itself.
    sysp::cloexec_from(3).map_err(ctx("cannot mark descriptors close-on-exec"))?;

    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_CORE, 0, 0)
        .map_err(|e| format!("cannot disable core dumps: {e}"))?;
    if let Some(n) = spec.nofile {
        setrlimit(Resource::RLIMIT_NOFILE, n, n)
            .map_err(|e| format!("cannot set RLIMIT_NOFILE to {n}: {e}"))?;
    }
    if let Some(n) = spec.nproc {
        setrlimit(Resource::RLIMIT_NPROC, n, n)
            .map_err(|e| format!("cannot set RLIMIT_NPROC to {n}: {e}"))?;
    }

    // The ruleset is built as root, so that every path opens; it is enforced below.
    let prepared = spec
        .sandbox
        .as_ref()
        .map(sandbox::prepare)
        .transpose()
        .map_err(|e| e.to_string())?;

    if let Some(c) = &spec.credentials {
        drop_privileges(c)?;
    }
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("cannot set the parent-death signal: {e}"))?;
    if nix::unistd::getppid().as_raw() != spec.supervisor {
        return Err("the supervisor exited while the service was starting".into());
    }
    sysp::set_umask(spec.umask);
    std::env::set_current_dir(&spec.workdir).map_err(|e| {
        format!(
            "cannot enter the working directory {}: {e}",
            spec.workdir.display()
        )
    })?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs: {e}"))?;

    let program = match after {
        None => Some(resolve_program(&spec.program, &spec.workdir, &spec.env)?),
        Some(_) => None,
    };
    let devnull = std::fs::File::open("/dev/null").map_err(ctx("cannot open /dev/null"))?;
    nix::unistd::dup2_stdin(&devnull).map_err(|e| format!("cannot redirect stdin: {e}"))?;

    if let Some(prepared) = prepared {
        let limits = sandbox::Limits {
            core: 0,
            nofile: spec.nofile,
            nproc: spec.nproc,
            no_new_privs: nix::sys::prctl::get_no_new_privs().unwrap_or(false),
        };
        let status = prepared.enforce(limits).map_err(|e| e.to_string())?;
        let json = serde_json::to_string(&status).expect("a status always serializes");
        sysp::write_fd(REPORT_FD, format!("{STATUS}{json}\n").as_bytes());
    }
    let Some(program) = program else {
        crate::sys::sandbox::close_fd(REPORT_FD);
        let after = after.expect("no program only with a hook");
        return after(spec);
    };

    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| "an argument or variable holds a NUL byte".to_owned())
    };
    let path = cstr(program.as_os_str().as_bytes())?;
    let mut argv = vec![cstr(spec.program.as_bytes())?];
    for a in &spec.args {
        argv.push(cstr(a.as_bytes())?);
    }
    let envp = spec
        .env
        .iter()
        .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let e = nix::unistd::execve(&path, &argv, &envp).unwrap_err();
    let hint = if e == nix::errno::Errno::EACCES && spec.sandbox.is_some() {
        " (the sandbox lets the service execute only the app, system directories and the \
         program's own environment: add its directory to sandbox.read)"
    } else {
        ""
    };
    Err(format!("cannot execute {}: {e}{hint}", program.display()))
}

/// Switches to the account for good: groups, gid, bounding set, uid, then no capability left.
fn drop_privileges(c: &Credentials) -> Result<(), String> {
    use nix::unistd::{setgroups, setresgid, setresuid};
    let groups: Vec<Gid> = c.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    setgroups(&groups).map_err(|e| format!("cannot set supplementary groups: {e}"))?;
    let gid = Gid::from_raw(c.gid);
    setresgid(gid, gid, gid).map_err(|e| format!("cannot switch to gid {}: {e}", c.gid))?;
    sysp::drop_bounding_set()
        .map_err(|e| format!("cannot empty the capability bounding set: {e}"))?;
    sysp::clear_ambient().map_err(|e| format!("cannot clear ambient capabilities: {e}"))?;
    let uid = Uid::from_raw(c.uid);
    setresuid(uid, uid, uid).map_err(|e| format!("cannot switch to uid {}: {e}", c.uid))?;
    sysp::clear_capabilities().map_err(|e| format!("cannot clear capabilities: {e}"))?;
    if c.uid != 0 && setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return Err("the privilege drop did not hold: root could be regained".into());
    }
    Ok(())
}

/// Finds the program: a path with a slash is relative to the working directory; a bare name is
/// looked up in the service's PATH (as the account, so only what it may execute counts).
pub fn resolve_program(
    program: &str,
    workdir: &Path,
    env: &[(String, String)],
) -> Result<PathBuf, String> {
    if program.contains('/') {
        let p = workdir.join(program);
        return if sysp::is_executable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "{} is not an executable file the service account may run",
                p.display()
            ))
        };
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(super::env::DEFAULT_PATH, |(_, v)| v.as_str());
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(program))
        .find(|p| sysp::is_executable(p))
        .ok_or_else(|| format!("{program} was not found in the service's PATH ({path})"))
}
