//! `warden probe`: real attacks, run as the service would be.
//!
//! warden starts the spawn helper exactly as `run` does (same account, same environment, same
//! limits, same sandbox plan), but the hidden `__probe-service` command runs the battery below
//! instead of `execve`. Attacks that would damage the deployment if they succeeded are made
//! harmless where the kernel allows it (a weight is opened for writing but not written,
//! truncated to its own size, chmodded to its own mode, renamed away and back); a weight that
//! could be deleted is put back from a descriptor opened before. The results come back as
//! JSON on the helper's stdout.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::sandbox;
use crate::supervise::{self, account, spawn};
use crate::sys::sandbox as sys;

/// The hidden command that runs the attacks after the drop and the sandbox.
pub const HELPER_COMMAND: &str = "__probe-service";

/// What an outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Something the service must not be able to do.
    Attack,
    /// Something the service needs: it must work.
    Control,
    /// A limit of the sandbox, stated (not counted).
    Note,
}

/// The result of one attack or control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Blocked,
    Allowed,
    Passed,
    Failed,
    Skipped,
    Info,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Allowed => "ALLOWED",
            Verdict::Passed => "passed",
            Verdict::Failed => "FAILED",
            Verdict::Skipped => "skipped",
            Verdict::Info => "note",
        }
    }

    /// True when this outcome makes the probe fail.
    pub fn bad(self) -> bool {
        matches!(self, Verdict::Allowed | Verdict::Failed)
    }
}

/// One attack or control and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub kind: Kind,
    /// What was tried.
    pub what: String,
    /// On what (a path, an address, a pid).
    pub target: String,
    pub verdict: Verdict,
    /// The kernel's answer or what was observed.
    pub detail: String,
}

/// The probe's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub user: String,
    pub uid: u32,
    /// What the sandbox enforced in the probe's process.
    pub sandbox: Option<sandbox::Status>,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Attacks that succeeded and controls that failed.
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.verdict.bad()).count()
    }
}

/// Why the probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Account(#[from] account::AccountError),
    #[error(transparent)]
    Supervise(#[from] supervise::Error),
    #[error("cannot start the probe: {0}")]
    Spawn(#[from] spawn::SpawnError),
    #[error("the probe did not finish: {0}")]
    Child(String),
}

/// What the attacks aim at, handed to the helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    pub ro_tiers: Vec<PathBuf>,
    pub tmp: PathBuf,
    pub app: PathBuf,
    pub policy_file: PathBuf,
    pub logs: PathBuf,
    /// The service's HOME when it lies outside its private directories.
    pub home: Option<PathBuf>,
    pub allowed: Vec<SocketAddr>,
    pub forbidden_port: u16,
    pub supervisor: i32,
    pub nproc: Option<u64>,
    /// `sandbox.shm`: /dev/shm is the service's to use.
    #[serde(default)]
    pub shm: bool,
}

/// Runs the probe: prepares the private directories as `run` does, starts the helper with the
/// service's spec, and collects the outcomes.
pub fn run(policy: &Policy) -> Result<Report, ProbeError> {
    let acct = account::resolve(policy)?;
    let env = acct.environment(policy);
    account::prepare_dirs(policy, &acct, &env)?;
    let me = std::process::id() as i32;
    let mut spec = supervise::service_spec(policy, &acct, &env, me)?;
    let home = env
        .get("HOME")
        .map(PathBuf::from)
        .filter(|h| !h.starts_with(&policy.tmp_dir) && !h.starts_with(&policy.state_dir));
    let targets = Targets {
        ro_tiers: policy.read_only_tiers().map(|t| t.path.clone()).collect(),
        tmp: policy.tmp_dir.clone(),
        app: policy.workdir.clone(),
        policy_file: policy.file.clone(),
        logs: policy.logs_dir.clone(),
        home,
        allowed: policy.service.listen.clone(),
        forbidden_port: forbidden_port(policy),
        supervisor: me,
        nproc: policy.sandbox.nproc,
        shm: policy.sandbox.shm,
    };
    spec.payload = Some(serde_json::to_value(&targets).expect("targets serialize"));
    let started = spawn::spawn_helper(HELPER_COMMAND, &spec, Stdio::piped(), Stdio::inherit())?;
    let mut child = started.child;
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        let _ = so.read_to_string(&mut out);
    }
    let status = child.wait().map_err(|e| ProbeError::Child(e.to_string()))?;
    cleanup(&policy.tmp_dir);
    let outcomes: Vec<Outcome> = serde_json::from_str(out.trim()).map_err(|e| {
        ProbeError::Child(format!(
            "the probe process ended ({status}) without a report: {e}"
        ))
    })?;
    Ok(Report {
        name: policy.service.name.clone(),
        user: acct.user,
        uid: acct.uid,
        sandbox: started.sandbox,
        outcomes,
    })
}

/// A free loopback port that `service.listen` does not allow.
fn forbidden_port(policy: &Policy) -> u16 {
    for _ in 0..20 {
        if let Ok(l) = TcpListener::bind("127.0.0.1:0")
            && let Ok(a) = l.local_addr()
            && !policy.service.listen.iter().any(|x| x.port() == a.port())
        {
            return a.port();
        }
    }
    1
}

/// Removes what a succeeded attack may have left in the temp dir (a core file).
fn cleanup(tmp: &Path) {
    if let Ok(entries) = std::fs::read_dir(tmp) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == "core" || n.starts_with("core.") || n.starts_with(".warden-probe") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The helper's side (the hidden `__probe-service` command): runs after the drop and the
/// sandbox, prints the outcomes as JSON and exits.
pub fn attacks_main(spec: &spawn::Spec) -> Result<std::convert::Infallible, String> {
    // execve makes a process dumpable again after a credential change; the service would be.
    let _ = sys::set_dumpable(true);
    let targets: Targets = spec
        .payload
        .clone()
        .ok_or("no probe targets")
        .and_then(|v| serde_json::from_value(v).map_err(|_| "bad probe targets"))?;
    let env: BTreeMap<String, String> = spec.env.iter().cloned().collect();
    let outcomes = battery(&targets, &env);
    let json = serde_json::to_string(&outcomes).map_err(|e| e.to_string())?;
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(json.as_bytes());
    let _ = so.flush();
    std::process::exit(0);
}

fn errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) => "EACCES (permission denied)".into(),
        Some(libc::EPERM) => "EPERM (operation not permitted)".into(),
        Some(libc::EROFS) => "EROFS (read-only file system)".into(),
        Some(libc::EAGAIN) => "EAGAIN (resource limit reached)".into(),
        _ => e.to_string(),
    }
}

struct Battery {
    out: Vec<Outcome>,
}

impl Battery {
    fn push(&mut self, id: &str, kind: Kind, what: &str, target: &str, v: Verdict, detail: String) {
        self.out.push(Outcome {
            id: id.into(),
            kind,
            what: what.into(),
            target: target.into(),
            verdict: v,
            detail,
        });
    }

    /// An attack: `Ok(detail)` means it worked.
    fn attack(&mut self, id: &str, what: &str, target: &Path, r: std::io::Result<String>) {
        let t = target.display().to_string();
        match r {
            Ok(d) => self.push(id, Kind::Attack, what, &t, Verdict::Allowed, d),
            Err(e) => self.push(id, Kind::Attack, what, &t, Verdict::Blocked, errno(&e)),
        }
    }

    fn skip(&mut self, id: &str, kind: Kind, what: &str, why: &str) {
        self.push(id, kind, what, "-", Verdict::Skipped, why.into());
    }
}

fn battery(t: &Targets, env: &BTreeMap<String, String>) -> Vec<Outcome> {
    let mut b = Battery { out: Vec::new() };
    let weights = list_files(&t.ro_tiers);
    // The biggest file is the likeliest weight (not a README or a .gitkeep).
    let victim = weights
        .iter()
        .max_by_key(|w| std::fs::metadata(w).map_or(0, |m| m.len()))
        .cloned();
    let tag = format!(".warden-probe-{}", std::process::id());

    // The weights.
    if let Some(w) = &victim {
        b.attack(
            "weights.write",
            "open a weight for writing",
            w,
            OpenOptions::new()
                .append(true)
                .open(w)
                .map(|_| "opened for writing (nothing written)".into()),
        );
        let len = std::fs::metadata(w).map(|m| m.len()).unwrap_or(0);
        b.attack(
            "weights.truncate",
            "truncate a weight",
            w,
            nix::unistd::truncate(w, len as i64)
                .map(|()| "truncate allowed (to its own size)".into())
                .map_err(std::io::Error::from),
        );
        let mode = std::fs::metadata(w)
            .map(|m| m.mode() & 0o7777)
            .unwrap_or(0o440);
        b.attack(
            "weights.chmod",
            "chmod a weight (to make it writable)",
            w,
            std::fs::set_permissions(w, std::fs::Permissions::from_mode(mode))
                .map(|()| "chmod allowed: the service owns the file".into()),
        );
        let moved = w.with_file_name(format!(
            "{}{tag}",
            w.file_name().unwrap_or_default().to_string_lossy()
        ));
        b.attack(
            "weights.rename",
            "rename a weight away",
            w,
            rename_noreplace(w, &moved).map(|()| {
                let back = std::fs::rename(&moved, w);
                format!(
                    "renamed{}",
                    if back.is_ok() {
                        " (and put back)"
                    } else {
                        " (COULD NOT BE PUT BACK)"
                    }
                )
            }),
        );
        b.attack(
            "weights.delete",
            "delete a weight",
            w,
            delete_and_restore(w),
        );
    } else {
        b.skip(
            "weights.write",
            Kind::Attack,
            "attacks on weights",
            "no file in a read-only tier",
        );
    }
    if let Some(dir) = adapter_dir(&t.ro_tiers) {
        let aside = dir.with_file_name(format!(
            "{}{tag}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ));
        b.attack(
            "weights.replace-adapter",
            "replace the adapter directory",
            &dir,
            rename_noreplace(&dir, &aside).map(|()| {
                let made = std::fs::create_dir(&dir).is_ok();
                if made {
                    let _ = std::fs::remove_dir(&dir);
                }
                let back = std::fs::rename(&aside, &dir);
                format!(
                    "moved aside{}{}",
                    if made { ", a new one created" } else { "" },
                    if back.is_ok() {
                        " (and put back)"
                    } else {
                        " (COULD NOT BE PUT BACK)"
                    }
                )
            }),
        );
    }
    for tier in &t.ro_tiers {
        let p = tier.join(&tag);
        b.attack(
            "weights.create",
            "create a file in a read-only tier",
            &p,
            create_new(&p),
        );
    }

    // The system.
    let mut outside: Vec<(&str, &str, PathBuf)> = vec![
        (
            "outside.tmp",
            "write to the shared /tmp",
            PathBuf::from("/tmp").join(&tag),
        ),
        (
            "outside.var-tmp",
            "write to /var/tmp",
            PathBuf::from("/var/tmp").join(&tag),
        ),
        (
            "outside.app",
            "write into the app directory",
            t.app.join(&tag),
        ),
        (
            "outside.logs",
            "write into warden's log directory",
            t.logs.join(&tag),
        ),
    ];
    if let Some(h) = &t.home {
        outside.push(("outside.home", "write to $HOME", h.join(&tag)));
    } else {
        b.skip(
            "outside.home",
            Kind::Attack,
            "write to $HOME",
            "HOME is the service's private state directory",
        );
    }
    if t.shm {
        b.push(
            "outside.dev-shm",
            Kind::Note,
            "write to /dev/shm",
            "/dev/shm",
            Verdict::Info,
            "allowed by sandbox.shm (POSIX semaphores and shared memory); the service's files \
             there are 0600"
                .into(),
        );
    } else {
        outside.push((
            "outside.dev-shm",
            "write to /dev/shm",
            PathBuf::from("/dev/shm").join(&tag),
        ));
    }
    for (id, what, p) in outside {
        b.attack(id, what, &p, create_new(&p));
    }
    b.attack(
        "outside.policy",
        "change the policy file",
        &t.policy_file,
        OpenOptions::new()
            .append(true)
            .open(&t.policy_file)
            .map(|_| "opened for writing (nothing written)".into()),
    );
    b.attack(
        "secrets.shadow",
        "read /etc/shadow",
        Path::new("/etc/shadow"),
        std::fs::File::open("/etc/shadow")
            .and_then(|mut f| {
                let mut buf = [0u8; 1];
                f.read(&mut buf)
            })
            .map(|_| "read".into()),
    );
    let fport = t.forbidden_port;
    for (id, what, ip) in [
        (
            "net.bind-port",
            "bind a port service.listen does not allow",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ),
        (
            "net.bind-any",
            "bind 0.0.0.0 (every interface) on a port service.listen does not allow",
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ),
    ] {
        let a = SocketAddr::new(ip, fport);
        b.attack(
            id,
            what,
            Path::new(&a.to_string()),
            TcpListener::bind(a).map(|_| "bound".into()),
        );
    }
    for a in &t.allowed {
        if a.ip().is_unspecified() {
            continue;
        }
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), a.port());
        b.push(
            "net.bind-any-own-port",
            Kind::Note,
            "bind 0.0.0.0 on the service's own port",
            &any.to_string(),
            Verdict::Info,
            "Landlock restricts ports, not addresses: warden refuses a command line that binds \
             elsewhere, and `status` warns about a listener outside service.listen"
                .into(),
        );
    }

    // Privileges and limits.
    setuid_attack(&mut b);
    let sup = Path::new("warden (the supervisor)");
    b.attack(
        "priv.signal",
        "signal warden",
        sup,
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(t.supervisor), None)
            .map(|()| format!("kill({}, 0) allowed", t.supervisor))
            .map_err(std::io::Error::from),
    );
    b.attack(
        "priv.ptrace",
        "ptrace warden",
        sup,
        sys::ptrace_attach(t.supervisor).map(|()| {
            let _ = sys::ptrace_detach(t.supervisor);
            "attached (and detached)".into()
        }),
    );
    core_attack(&mut b, &t.tmp);
    fork_attack(&mut b, t.nproc);

    // Controls: what the service needs.
    let mut read = 0usize;
    let mut failed = Vec::new();
    for w in &weights {
        let r = std::fs::File::open(w).and_then(|mut f| {
            let mut buf = vec![0u8; 64 << 10];
            f.read(&mut buf)
        });
        match r {
            Ok(_) => read += 1,
            Err(e) => failed.push(format!("{}: {}", w.display(), errno(&e))),
        }
    }
    let listed = t.ro_tiers.iter().all(|d| std::fs::read_dir(d).is_ok());
    let (v, d) = if failed.is_empty() && listed && !weights.is_empty() {
        (
            Verdict::Passed,
            format!("{read} file{} read", if read == 1 { "" } else { "s" }),
        )
    } else if weights.is_empty() && t.ro_tiers.is_empty() {
        (Verdict::Skipped, "no read-only tier".into())
    } else if !listed || weights.is_empty() {
        (Verdict::Failed, "a read-only tier cannot be listed".into())
    } else {
        (Verdict::Failed, failed.join("; "))
    };
    let tiers: Vec<String> = t.ro_tiers.iter().map(|p| p.display().to_string()).collect();
    b.push(
        "control.read-weights",
        Kind::Control,
        "read every weight",
        &tiers.join(", "),
        v,
        d,
    );
    let tmp = env
        .get("TMPDIR")
        .map_or_else(|| t.tmp.clone(), PathBuf::from);
    let f = tmp.join(&tag);
    let r = std::fs::write(&f, b"probe")
        .and_then(|()| std::fs::read(&f))
        .and_then(|_| std::fs::remove_file(&f));
    b.push(
        "control.write-tmp",
        Kind::Control,
        "write TMPDIR",
        &tmp.display().to_string(),
        if r.is_ok() {
            Verdict::Passed
        } else {
            Verdict::Failed
        },
        r.map_or_else(|e| errno(&e), |()| "written, read back, removed".into()),
    );
    for a in &t.allowed {
        let r = TcpListener::bind(a);
        let (v, d) = match r {
            Ok(_) => (Verdict::Passed, "bound".to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => (
                Verdict::Passed,
                "in use (the service is running?); the sandbox let the bind through".to_owned(),
            ),
            Err(e) => (Verdict::Failed, errno(&e)),
        };
        b.push(
            "control.bind-own",
            Kind::Control,
            "bind its own address",
            &a.to_string(),
            v,
            d,
        );
    }
    if t.allowed.is_empty() {
        b.skip(
            "control.bind-own",
            Kind::Control,
            "bind its own address",
            "service.listen is empty",
        );
    }
    b.out
}

/// Regular files of the tiers, sorted (symlinks are not followed).
fn list_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
            if out.len() > 1_000_000 {
                break;
            }
        }
    }
    out.sort();
    out
}

/// The directory an attacker would swap: a read-only tier holding an adapter, else the most
/// specific read-only tier.
fn adapter_dir(tiers: &[PathBuf]) -> Option<PathBuf> {
    let has_adapter = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|es| {
            es.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("adapter_"))
        })
    };
    tiers
        .iter()
        .find(|d| has_adapter(d))
        .or_else(|| tiers.iter().max_by_key(|d| d.components().count()))
        .cloned()
}

fn create_new(p: &Path) -> std::io::Result<String> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .map(|_| {
            let _ = std::fs::remove_file(p);
            "created (and removed)".into()
        })
}

fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        from,
        nix::fcntl::AT_FDCWD,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(std::io::Error::from)
}

/// Unlinks a weight; if that works, writes it back from a descriptor opened before.
fn delete_and_restore(w: &Path) -> std::io::Result<String> {
    let mut keep = std::fs::File::open(w).ok();
    let mode = std::fs::metadata(w)
        .map(|m| m.mode() & 0o777)
        .unwrap_or(0o440);
    std::fs::remove_file(w)?;
    let restored = keep.as_mut().is_some_and(|f| {
        let mut data = Vec::new();
        f.read_to_end(&mut data).is_ok()
            && OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(w)
                .and_then(|mut o| o.write_all(&data))
                .is_ok()
    });
    Ok(if restored {
        "deleted (its content was written back from an open descriptor; owner may differ)".into()
    } else {
        "deleted: COULD NOT BE RESTORED, restore it from your copy".into()
    })
}

/// Runs a setuid-root program (one that waits on its input) and looks at its credentials.
fn setuid_attack(b: &mut Battery) {
    const CANDIDATES: &[&str] = &[
        "/usr/bin/passwd",
        "/usr/bin/su",
        "/bin/su",
        "/usr/bin/chfn",
        "/usr/bin/newgrp",
    ];
    let what = "exec a setuid-root program to regain root";
    let Some(prog) = CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o4000 != 0))
    else {
        b.skip(
            "priv.setuid",
            Kind::Attack,
            what,
            "no setuid-root program found on this host",
        );
        return;
    };
    let child = std::process::Command::new(prog)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            b.attack("priv.setuid", what, prog, Err(e));
            return;
        }
    };
    let pid = child.id();
    let name = prog.file_name().unwrap_or_default().to_string_lossy();
    let end = Instant::now() + Duration::from_secs(3);
    let mut seen = None;
    while Instant::now() < end {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let field = |k: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned()))
            };
            if field("Name:").is_some_and(|n| name.starts_with(&n)) {
                seen = field("Uid:");
                break;
            }
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    match seen {
        Some(uids) => {
            let euid = uids.split_whitespace().nth(1).unwrap_or("?").to_owned();
            if euid == "0" {
                b.attack(
                    "priv.setuid",
                    what,
                    prog,
                    Ok(format!("it ran with effective uid 0 ({uids})")),
                );
            } else {
                b.attack(
                    "priv.setuid",
                    what,
                    prog,
                    Err(std::io::Error::other(format!(
                        "it ran as uid {euid}: the setuid bit was ignored (no_new_privs)"
                    ))),
                );
            }
        }
        None => {
            let nnp = nix::sys::prctl::get_no_new_privs().unwrap_or(false);
            let r = if nnp {
                Err(std::io::Error::other(
                    "it ended before it could be observed; no_new_privs is set, so the setuid \
                     bit is ignored",
                ))
            } else {
                Ok("it ended before it could be observed, and no_new_privs is NOT set".into())
            };
            b.attack("priv.setuid", what, prog, r);
        }
    }
}

/// Raises the core limit and crashes a child in the temp dir.
fn core_attack(b: &mut Battery, tmp: &Path) {
    use nix::sys::resource::{Resource, setrlimit};
    let what = "dump core (a core holds weights and prompts)";
    let raised = setrlimit(
        Resource::RLIMIT_CORE,
        libc::RLIM_INFINITY,
        libc::RLIM_INFINITY,
    );
    let _ = std::env::set_current_dir(tmp);
    let r = sys::fork_child(sys::ChildAction::Abort).and_then(|pid| {
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).map_err(std::io::Error::from)
    });
    let dumped = matches!(r, Ok(nix::sys::wait::WaitStatus::Signaled(_, _, true)));
    let result = if dumped {
        Ok("the crashing child dumped core".to_owned())
    } else if raised.is_ok() {
        Ok("the core limit could be raised".to_owned())
    } else {
        Err(std::io::Error::other(
            "the core limit is 0 and cannot be raised; the crashing child dumped no core",
        ))
    };
    b.attack("limits.core", what, tmp, result);
}

/// Forks children until the process limit stops it.
fn fork_attack(b: &mut Battery, nproc: Option<u64>) {
    use nix::sys::resource::{Resource, getrlimit};
    let what = "fork beyond the process limit";
    let (soft, _) = getrlimit(Resource::RLIMIT_NPROC).unwrap_or((libc::RLIM_INFINITY, 0));
    let target = Path::new("RLIMIT_NPROC");
    if nproc.is_none() && (soft == libc::RLIM_INFINITY || soft > 4096) {
        b.attack(
            "limits.fork",
            what,
            target,
            Ok(format!(
                "no limit set by the policy (sandbox.nproc); the account may start {} processes",
                if soft == libc::RLIM_INFINITY {
                    "unlimited".to_owned()
                } else {
                    soft.to_string()
                }
            )),
        );
        return;
    }
    let cap = soft.saturating_add(16).min(8192);
    let mut kids = Vec::new();
    let mut stopped = None;
    while (kids.len() as u64) < cap {
        match sys::fork_child(sys::ChildAction::Pause) {
            Ok(pid) => kids.push(pid),
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    for &k in &kids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(k), nix::sys::signal::SIGKILL);
    }
    for &k in &kids {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(k), None);
    }
    let n = kids.len();
    let r = match stopped {
        Some(e) => Err(std::io::Error::other(format!(
            "stopped after {n} children: {}",
            errno(&e)
        ))),
        None => Ok(format!("{n} children started, none refused")),
    };
    b.attack("limits.fork", what, target, r);
}
