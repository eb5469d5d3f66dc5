//! `warden export systemd`: a unit that maps the policy onto systemd's own sandboxing.
//!
//! Two shapes, chosen by [`Options::warden`]:
//!
//! - **warden in the unit** (the default). `ExecStart` is `warden -c POLICY run --no-echo`, and
//!   `User=` is the policy's account: systemd does the account switch, the capability drop and
//!   the namespaces before warden starts, so warden runs unprivileged (its rootless mode: no
//!   account switch, runtime files in `STATE/.warden`) and keeps everything systemd cannot do:
//!   preflight refusals, integrity and scans before each start, Landlock, the clean
//!   environment, log capture with redaction and rotation, restarts with backoff, readiness.
//! - **the bare command** (`--no-warden`). systemd alone runs the service. Nothing above
//!   happens: output reaches the journal as printed (prompts included), model files are
//!   neither verified nor scanned, and a `--share` added to the command later is not refused.
//!
//! Every directive is gated on the target systemd version: one the target does not know is
//! written as a comment naming the version it needs, never silently dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Export, ExportError, loopback_only, ports};
use crate::policy::schema::DevicePreset;
use crate::policy::{Access, Enforcement, Policy, RestartPolicy};
use crate::supervise::{env, restart};

/// The systemd version assumed when none is given and none can be found.
pub const DEFAULT_VERSION: u32 = 252;

/// Whether the service may create memory that is both writable and executable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Jit {
    /// Deny, except with a GPU device preset (CUDA and ROCm JIT-compile kernels).
    #[default]
    Auto,
    /// `MemoryDenyWriteExecute=yes`, and the state directory (caches) is not executable.
    Deny,
    /// Allow: for Python stacks that JIT (numba, torch.compile/triton, llvmlite, PyPy).
    Allow,
}

/// How to export.
#[derive(Debug, Clone)]
pub struct Options {
    /// The target systemd's version (`systemd --version`).
    pub version: u32,
    /// The warden binary for `ExecStart`, or `None` for the bare command (`--no-warden`).
    pub warden: Option<PathBuf>,
    pub jit: Jit,
}

/// Directives and the systemd version that introduced them (the gates).
mod since {
    pub const AMBIENT: u32 = 229;
    pub const START_LIMIT_INTERVAL_SEC: u32 = 230;
    pub const RW_PATHS: u32 = 231;
    pub const REALTIME: u32 = 231;
    pub const MDWE: u32 = 231;
    pub const STRICT: u32 = 232;
    pub const KERNEL: u32 = 232;
    pub const PRIVATE_USERS: u32 = 232;
    pub const REMOVE_IPC: u32 = 232;
    pub const NAMESPACES: u32 = 233;
    pub const LOCK_PERSONALITY: u32 = 235;
    pub const IP_ACCESS: u32 = 235;
    pub const KEYRING: u32 = 235;
    pub const SYSTEM_SERVICE: u32 = 239;
    pub const PRIVATE_MOUNTS: u32 = 239;
    pub const TYPE_EXEC: u32 = 240;
    pub const HOSTNAME: u32 = 242;
    pub const SUID: u32 = 242;
    pub const KERNEL_LOGS: u32 = 244;
    pub const CLOCK: u32 = 245;
    pub const PROC: u32 = 247;
    pub const EXEC_PATHS: u32 = 247;
    pub const PRIVATE_IPC: u32 = 248;
    pub const LANDLOCK_NAMES: u32 = 248;
    pub const SOCKET_BIND: u32 = 249;
    pub const RESTART_STEPS: u32 = 254;
    pub const PRIVATE_PIDS: u32 = 257;
}

/// Landlock's system calls: systemd before 256 has them in no group, so `@system-service`
/// alone would deny them and warden's Landlock would find "not supported".
const LANDLOCK_SYSCALLS: &str = "landlock_create_ruleset landlock_add_rule landlock_restrict_self";

/// Writes a unit for the policy.
pub fn unit(policy: &Policy, opts: &Options) -> Result<Export, ExportError> {
    let mut u = Writer {
        out: String::new(),
        version: opts.version,
        skipped: Vec::new(),
    };
    let mut notes = Vec::new();
    let name = &policy.service.name;
    let gpu = !policy.sandbox.devices.is_empty();
    let nvidia = policy.sandbox.devices.contains(&DevicePreset::Nvidia);
    let deny_wx = match opts.jit {
        Jit::Auto => !gpu,
        Jit::Deny => true,
        Jit::Allow => false,
    };
    // systemd's user namespace and supplementary groups do not mix (the groups are not mapped).
    let private_users = policy.service.groups.is_empty();
    let loopback = loopback_only(&policy.service.listen);
    let protect_home = protect_home(policy, opts, &mut notes);
    for dir in [
        &policy.root,
        &policy.logs_dir,
        &policy.tmp_dir,
        &policy.state_dir,
    ] {
        if dir.starts_with("/tmp") || dir.starts_with("/var/tmp") {
            notes.push(format!(
                "{} is under /tmp or /var/tmp, which PrivateTmp=yes replaces with an empty \
                 directory: the service will not find it; move the deployment (e.g. to /srv)",
                dir.display()
            ));
            break;
        }
    }

    let _ = writeln!(
        u.out,
        "# {name}.service: written by `warden export systemd` from {}",
        path_comment(&policy.file)
    );
    let _ = writeln!(
        u.out,
        "# for systemd {} and later. Install it as /etc/systemd/system/{name}.service, then\n\
         # `systemctl daemon-reload && systemctl enable --now {name}`.",
        opts.version
    );
    match &opts.warden {
        Some(_) => u.out.push_str(
            "#\n\
             # systemd switches to the account and sandboxes; warden, started unprivileged inside\n\
             # that sandbox, keeps what systemd cannot do: refusing public tunnels and binds the\n\
             # policy does not allow, verifying and scanning the weights before each start,\n\
             # Landlock, the clean environment, redacted and rotated logs (LOGS/NAME.log),\n\
             # restarts with backoff. Create the account and the directories first, as root:\n\
             # `warden harden -c POLICY`.\n",
        ),
        None => u.out.push_str(
            "#\n\
             # --no-warden: systemd alone runs the command. Not done without warden: output goes\n\
             # to the journal as printed (prompts and personal data included, no redaction, no\n\
             # level filter); model files are neither verified nor scanned before start; a\n\
             # public tunnel or bind added to the command later is not refused; no Landlock;\n\
             # the temp directory is not emptied on start.\n",
        ),
    }
    let verifies = policy.integrity.verify != crate::policy::schema::Verify::Off;
    if opts.warden.is_some() && verifies {
        // warden trusts only a manifest owned by the user it runs as.
        let user = policy.service.user.as_str();
        let file = path_comment(&policy.file);
        let _ = write!(
            u.out,
            "# warden runs as {user} here and trusts only an integrity manifest that {user} owns:\n\
             # seal as the account, `runuser -u {user} -- warden -c {file} seal`.\n"
        );
        notes.push(format!(
            "integrity.verify is on and warden runs as {user}: seal as the account \
             (`runuser -u {user} -- warden -c {file} seal`), or warden refuses to start"
        ));
    }

    u.section("Unit");
    u.set(
        0,
        "Description",
        &format!("{} (AI model service, warden policy)", esc(name)),
    );
    u.set(0, "After", "network.target");
    if opts.warden.is_some() {
        u.set(
            0,
            "AssertPathExists",
            &single_path("the policy file", &policy.file)?,
        );
    }
    // ProtectSystem=strict leaves the deployment read-only except these: they must exist
    // before the mount namespace is set up (warden harden creates them).
    for d in private_dirs(policy) {
        u.set(
            0,
            "AssertPathIsDirectory",
            &single_path("a private directory", d)?,
        );
    }
    let r = &policy.service.restart;
    u.set(
        since::START_LIMIT_INTERVAL_SEC,
        "StartLimitIntervalSec",
        &seconds(r.within.0),
    );
    u.set(0, "StartLimitBurst", &(r.max + 1).to_string());

    u.section("Service");
    u.set(
        0,
        "Type",
        if opts.version >= since::TYPE_EXEC {
            "exec"
        } else {
            "simple"
        },
    );
    u.set(0, "User", policy.service.user.as_str());
    u.set(0, "Group", policy.group.as_str());
    if !policy.service.groups.is_empty() {
        let g: Vec<&str> = policy.service.groups.iter().map(|g| g.as_str()).collect();
        u.set(0, "SupplementaryGroups", &g.join(" "));
    }
    u.set(
        0,
        "WorkingDirectory",
        &single_path("the working directory", &policy.workdir)?,
    );
    match &opts.warden {
        Some(bin) => {
            let args = [
                bin.to_string_lossy().into_owned(),
                "-c".into(),
                policy.file.to_string_lossy().into_owned(),
                "run".into(),
                "--no-echo".into(),
            ];
            if !bin.is_absolute() {
                return Err(ExportError::Unit {
                    what: "the warden binary",
                    value: bin.display().to_string(),
                    why: "ExecStart needs an absolute path",
                });
            }
            u.set(0, "ExecStart", &exec_line(&args)?);
        }
        None => {
            let identity = env::Identity {
                user: policy.service.user.as_str(),
                home: None,
            };
            for (k, v) in env::build(policy, &identity, std::iter::empty()) {
                u.set(0, "Environment", &quote(&format!("{k}={v}"), false)?);
            }
            let mut args = policy.service.command.clone();
            args[0] = resolve_program(policy, &mut notes);
            u.set(0, "ExecStart", &exec_line(&args)?);
        }
    }

    // Restarts. With warden in the unit, warden restarts the service (backoff, max within
    // the window) and exits 1 when it gives up: systemd only restarts warden itself after it
    // died from a signal (OOM killer, a crash).
    let (restart, restart_sec) = match (&opts.warden, r.policy) {
        (_, RestartPolicy::Never) => ("no", restart::BASE_DELAY),
        (Some(_), _) => ("on-abnormal", Duration::from_secs(1)),
        (None, RestartPolicy::OnFailure) => ("on-failure", restart::BASE_DELAY),
        (None, RestartPolicy::Always) => ("always", restart::BASE_DELAY),
    };
    u.set(0, "Restart", restart);
    if restart != "no" {
        u.set(0, "RestartSec", &seconds(restart_sec));
        if opts.warden.is_none() {
            // warden's own backoff: doubling from 0.5s up to 30s.
            u.set(since::RESTART_STEPS, "RestartSteps", "6");
            u.set(
                since::RESTART_STEPS,
                "RestartMaxDelaySec",
                &seconds(restart::MAX_DELAY),
            );
        }
    }
    let stop = policy.service.stop_timeout.0;
    match &opts.warden {
        Some(_) => {
            // warden forwards SIGTERM to the service's process group and escalates to SIGKILL
            // after stop-timeout itself; systemd's own SIGKILL comes later, for warden.
            u.set(0, "KillMode", "mixed");
            u.set(
                0,
                "TimeoutStopSec",
                &seconds(stop + Duration::from_secs(15)),
            );
        }
        None => {
            // SIGTERM to every process of the service, as warden does to its process group.
            u.set(0, "KillMode", "control-group");
            u.set(0, "TimeoutStopSec", &seconds(stop));
        }
    }
    if opts.warden.is_some() {
        u.set(
            since::PRIVATE_PIDS,
            "PrivatePIDs",
            "yes  # warden is PID 1 of the service's PID namespace and reaps orphans",
        );
    }

    u.blank("Privileges: none to begin with, none to gain.");
    u.set(0, "NoNewPrivileges", "yes");
    u.set(0, "CapabilityBoundingSet", "");
    u.set(since::AMBIENT, "AmbientCapabilities", "");
    u.set(since::SUID, "RestrictSUIDSGID", "yes");
    u.set(0, "UMask", "0077");
    if private_users {
        u.set(since::PRIVATE_USERS, "PrivateUsers", "yes");
    } else {
        u.comment("PrivateUsers=yes is left out: the supplementary groups would not be mapped");
    }

    u.blank("Files: the OS read-only, the tiers read-only, the private directories writable.");
    u.set(since::STRICT, "ProtectSystem", "strict");
    u.set(0, "ProtectHome", protect_home);
    u.set(0, "PrivateTmp", "yes");
    let rw: Vec<&Path> = private_dirs(policy)
        .chain(
            policy
                .tiers
                .iter()
                .filter(|t| t.access == Access::ReadWrite)
                .map(|t| t.path.as_path()),
        )
        .collect();
    u.set(
        since::RW_PATHS,
        "ReadWritePaths",
        &path_list("a writable path", &rw)?,
    );
    let ro: Vec<&Path> = policy.read_only_tiers().map(|t| t.path.as_path()).collect();
    if !ro.is_empty() {
        u.set(
            since::RW_PATHS,
            "ReadOnlyPaths",
            &path_list("a read-only tier", &ro)?,
        );
    }
    // Nothing written by the service may be executed: uploads, logs, and (unless JIT code is
    // allowed) the caches in the state directory.
    let mut noexec = vec![policy.tmp_dir.as_path(), policy.logs_dir.as_path()];
    if deny_wx {
        noexec.push(policy.state_dir.as_path());
    }
    u.set(
        since::EXEC_PATHS,
        "NoExecPaths",
        &path_list("a private directory", &noexec)?,
    );
    u.set(since::PRIVATE_MOUNTS, "PrivateMounts", "yes");

    u.blank("Devices.");
    u.set(0, "DevicePolicy", "closed");
    if gpu {
        u.set(0, "PrivateDevices", "no");
        for p in &policy.sandbox.devices {
            for dev in device_allow(*p) {
                u.set(0, "DeviceAllow", dev);
            }
        }
    } else {
        u.set(0, "PrivateDevices", "yes");
    }

    u.blank("Kernel, processes, IPC.");
    u.set(since::KERNEL, "ProtectKernelTunables", "yes");
    u.set(since::KERNEL, "ProtectKernelModules", "yes");
    u.set(since::KERNEL_LOGS, "ProtectKernelLogs", "yes");
    u.set(since::KERNEL, "ProtectControlGroups", "yes");
    u.set(since::CLOCK, "ProtectClock", "yes");
    u.set(since::HOSTNAME, "ProtectHostname", "yes");
    u.set(since::PROC, "ProtectProc", "invisible");
    if nvidia {
        // The NVIDIA user-space driver reads /proc/driver/nvidia.
        u.set(since::PROC, "ProcSubset", "all");
    } else {
        u.comment(
            "Hides /proc/meminfo and /proc/cpuinfo too: a stack that sizes itself with psutil \
             (accelerate's device_map=\"auto\") needs ProcSubset=all",
        );
        u.set(since::PROC, "ProcSubset", "pid");
    }
    u.set(since::NAMESPACES, "RestrictNamespaces", "yes");
    u.set(since::REALTIME, "RestrictRealtime", "yes");
    u.set(since::LOCK_PERSONALITY, "LockPersonality", "yes");
    if deny_wx {
        u.set(since::MDWE, "MemoryDenyWriteExecute", "yes");
    } else {
        u.comment(
            "MemoryDenyWriteExecute=yes is left out: JIT compilers (CUDA, numba, triton) need \
             writable executable memory",
        );
    }
    u.set(since::PRIVATE_IPC, "PrivateIPC", "yes");
    u.set(since::REMOVE_IPC, "RemoveIPC", "yes");
    u.set(since::KEYRING, "KeyringMode", "private");

    u.blank("System calls: what a service needs, nothing privileged, no resource tuning.");
    u.set(0, "SystemCallArchitectures", "native");
    u.set(since::SYSTEM_SERVICE, "SystemCallFilter", "@system-service");
    u.set(0, "SystemCallFilter", "~@privileged @resources");
    if opts.warden.is_some() && policy.sandbox.landlock != Enforcement::Off {
        u.set(since::LANDLOCK_NAMES, "SystemCallFilter", LANDLOCK_SYSCALLS);
    }
    u.set(0, "SystemCallErrorNumber", "EPERM");

    u.blank("Network.");
    u.set(0, "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6");
    if loopback {
        u.set(since::IP_ACCESS, "IPAddressDeny", "any");
        u.set(since::IP_ACCESS, "IPAddressAllow", "localhost");
    } else if policy.service.listen.is_empty() {
        notes.push(
            "service.listen is empty: no IP address restriction was written (the policy does \
             not say which peers the service talks to)"
                .into(),
        );
    }
    let ports = ports(policy);
    for p in &ports {
        u.set(since::SOCKET_BIND, "SocketBindAllow", &format!("tcp:{p}"));
    }
    u.set(since::SOCKET_BIND, "SocketBindDeny", "any");

    u.blank("Limits.");
    u.set(0, "LimitCORE", "0");
    if let Some(n) = policy.sandbox.nofile {
        u.set(0, "LimitNOFILE", &n.to_string());
    }
    if let Some(n) = policy.sandbox.nproc {
        u.set(0, "LimitNPROC", &n.to_string());
    }

    u.section("Install");
    u.set(0, "WantedBy", "multi-user.target");

    // Refinements newer than the baseline are not worth a remark each time.
    let extras = [since::PRIVATE_PIDS, since::RESTART_STEPS];
    for (key, v) in u.skipped.iter().filter(|(_, v)| !extras.contains(v)) {
        notes.push(format!(
            "{key}= needs systemd {v} (target: {}): written as a comment",
            opts.version
        ));
    }
    if gpu && !deny_wx && opts.jit == Jit::Auto {
        notes.push(
            "a GPU device preset is set: MemoryDenyWriteExecute is left out (pass --jit deny \
             if the stack needs no JIT)"
                .into(),
        );
    }
    Ok(Export { text: u.out, notes })
}

/// logs, tmp and state: the directories the service writes.
fn private_dirs(policy: &Policy) -> impl Iterator<Item = &Path> {
    [&policy.logs_dir, &policy.tmp_dir, &policy.state_dir]
        .into_iter()
        .map(PathBuf::as_path)
}

/// `yes` hides /home, /root and /run/user; `read-only` when the deployment or warden lives
/// there (ReadWritePaths still opens the private directories).
fn protect_home(policy: &Policy, opts: &Options, notes: &mut Vec<String>) -> &'static str {
    let homes = [
        Path::new("/home"),
        Path::new("/root"),
        Path::new("/run/user"),
    ];
    let mut needed: Vec<&Path> = vec![&policy.root, &policy.workdir];
    needed.extend(policy.tiers.iter().map(|t| t.path.as_path()));
    if let Some(w) = &opts.warden {
        needed.push(w);
    }
    match needed
        .iter()
        .find(|p| homes.iter().any(|h| p.starts_with(h)))
    {
        Some(p) => {
            notes.push(format!(
                "{} is under a home directory: ProtectHome=read-only instead of yes (a system \
                 service belongs under /srv or /opt)",
                p.display()
            ));
            "read-only"
        }
        None => "yes",
    }
}

/// The devices a preset may open, as DeviceAllow= values (by driver name, so that they match
/// however many GPUs the host has; a driver that is not loaded is skipped by systemd).
fn device_allow(p: DevicePreset) -> &'static [&'static str] {
    match p {
        // /dev/nvidia0.., nvidiactl, nvidia-modeset; nvidia-uvm(-tools); nvidia-caps (MIG).
        DevicePreset::Nvidia => &[
            "char-nvidia-frontend rw",
            "char-nvidia-uvm rw",
            "char-nvidia-caps rw",
        ],
        // /dev/dri/card* and renderD*; /dev/kfd for ROCm compute.
        DevicePreset::Dri => &["char-drm rw", "char-kfd rw"],
    }
}

/// The program for `ExecStart` without warden: relative to the working directory when it has a
/// slash, else looked up in warden's default PATH here (systemd searches its own otherwise).
fn resolve_program(policy: &Policy, notes: &mut Vec<String>) -> String {
    let program = &policy.service.command[0];
    if program.contains('/') {
        return policy.workdir.join(program).to_string_lossy().into_owned();
    }
    for dir in env::DEFAULT_PATH.split(':') {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p.to_string_lossy().into_owned();
        }
    }
    notes.push(format!(
        "{program} is not in {} here: ExecStart names it bare and systemd searches its PATH \
         on the target",
        env::DEFAULT_PATH
    ));
    program.clone()
}

struct Writer {
    out: String,
    version: u32,
    skipped: Vec<(&'static str, u32)>,
}

impl Writer {
    fn section(&mut self, name: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        let _ = writeln!(self.out, "[{name}]");
    }

    fn blank(&mut self, comment: &str) {
        let _ = write!(self.out, "\n# {comment}\n");
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.out, "# {text}");
    }

    /// `key=value`, or a comment when the target is older than `since`. A value may carry a
    /// trailing `  # comment`, which goes on the line above.
    fn set(&mut self, since: u32, key: &'static str, value: &str) {
        let (value, why) = match value.split_once("  # ") {
            Some((v, c)) => (v, Some(c)),
            None => (value, None),
        };
        if let Some(c) = why {
            let _ = writeln!(self.out, "# {c}");
        }
        if self.version >= since {
            let _ = writeln!(self.out, "{key}={value}");
        } else {
            let _ = writeln!(self.out, "#{key}={value}  (needs systemd {since})");
            if !self.skipped.iter().any(|(k, _)| *k == key) {
                self.skipped.push((key, since));
            }
        }
    }
}

/// A duration as systemd reads it: whole seconds, else milliseconds.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Escapes `%` (systemd specifiers).
fn esc(s: &str) -> String {
    s.replace('%', "%%")
}

fn path_comment(p: &Path) -> String {
    crate::term::escape(&p.to_string_lossy()).replace('\n', " ")
}

/// Characters no unit file value can carry safely.
fn check_chars(what: &'static str, s: &str) -> Result<(), ExportError> {
    if s.chars().any(char::is_control) {
        return Err(ExportError::Unit {
            what,
            value: s.to_owned(),
            why: "it contains a control character",
        });
    }
    Ok(())
}

/// A path for a directive that takes one path as the rest of the line.
fn single_path(what: &'static str, p: &Path) -> Result<String, ExportError> {
    let s = p.to_string_lossy();
    check_chars(what, &s)?;
    Ok(esc(&s))
}

/// Paths for a space-separated list (ReadWritePaths=...): quoted when needed.
fn path_list(what: &'static str, paths: &[&Path]) -> Result<String, ExportError> {
    let mut out = Vec::new();
    for p in paths {
        let s = p.to_string_lossy();
        check_chars(what, &s)?;
        out.push(quote(&s, false)?);
    }
    Ok(out.join(" "))
}

/// One word for a systemd list or command line: bare when it is plain, else double-quoted
/// with C escapes. `%` is always doubled; `$` too on command lines (`exec`).
fn quote(s: &str, exec: bool) -> Result<String, ExportError> {
    check_chars("a value", s)?;
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | '=' | ':' | ',' | '+' | '@')
        })
        && !(exec && s == ";");
    let mut out = String::with_capacity(s.len() + 2);
    if !plain {
        out.push('"');
    }
    for c in s.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' if exec => out.push_str("$$"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    if !plain {
        out.push('"');
    }
    Ok(out)
}

/// An `ExecStart=` command line: the program (absolute or bare name) and quoted arguments.
fn exec_line(args: &[String]) -> Result<String, ExportError> {
    let mut words = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        if i == 0 && a.starts_with(['@', '-', ':', '+', '!', '|']) {
            return Err(ExportError::Unit {
                what: "the program",
                value: a.clone(),
                why: "a leading @ - : + ! or | means something else to systemd",
            });
        }
        words.push(quote(a, true)?);
    }
    Ok(words.join(" "))
}

/// The version of the local systemd (`systemd --version`'s first line), if it can be found.
pub fn parse_version(output: &str) -> Option<u32> {
    let first = output.lines().next()?;
    let mut words = first.split_whitespace();
    if words.next()? != "systemd" {
        return None;
    }
    let v = words.next()?;
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
