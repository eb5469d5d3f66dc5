//! From a policy to the sandbox's rules. Reads directories (the app's, `/etc`, `/dev`) but
//! changes nothing; runs in the supervisor, before every start.
//!
//! - the app (the working directory) is readable and executable, except the places that get
//!   their own rule: the tiers, the private directories (tmp and state read-write, logs not at
//!   all: the service's output reaches them through warden);
//! - read-only tiers are readable (and executable only when their file mode has an x bit);
//! - the runtime: system directories, `/etc` without its secrets, `/proc` and `/sys` read-only,
//!   the program's own install (a Python venv or conda env found above it or its interpreter);
//! - `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`, `/dev/shm` (unless
//!   `sandbox.shm = false`), and the device presets;
//! - the policy's own `sandbox.read` and `sandbox.write` paths;
//! - TCP bind only to the ports of `service.listen`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Access, Error, Plan, Rule};
use crate::policy::schema::DevicePreset;
use crate::policy::{Access as TierAccess, Enforcement, Policy};

/// System directories with programs and libraries: read and execute.
const SYSTEM_EXEC: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Read-only kernel views.
const SYSTEM_READ: &[&str] = &["/proc", "/sys"];

/// Entries of `/etc` that hold secrets: never in the sandbox, whatever their modes.
const ETC_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/credstore",
    "/etc/credstore.encrypted",
    "/etc/NetworkManager/system-connections",
    "/etc/wireguard",
    "/etc/ppp/chap-secrets",
    "/etc/ppp/pap-secrets",
    "/etc/krb5.keytab",
    "/etc/docker/key.json",
    "/etc/libvirt/secrets",
];

/// Character devices every program may use.
const DEVICES_RW: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];
const DEVICES_READ: &[&str] = &["/dev/random", "/dev/urandom"];

/// Builds the sandbox plan for `policy`. `program` is the service's program as resolved for the
/// start (its install directory is found from it); `env` is the service's environment (a
/// venv on its PATH counts as the program's install).
pub fn plan(
    policy: &Policy,
    program: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<Plan, Error> {
    let sb = &policy.sandbox;
    let mut p = Plan {
        enforcement: sb.landlock,
        rules: Vec::new(),
        bind_ports: Vec::new(),
        devices: sb
            .devices
            .iter()
            .map(|d| preset_name(*d).to_owned())
            .collect(),
    };
    if sb.landlock == Enforcement::Off {
        return Ok(p);
    }
    let mut own: Vec<PathBuf> = vec![
        policy.tmp_dir.clone(),
        policy.state_dir.clone(),
        policy.logs_dir.clone(),
    ];
    own.extend(policy.tiers.iter().map(|t| t.path.clone()));
    let rules = &mut p.rules;

    // The app.
    cover(
        &policy.workdir,
        &own,
        Access::ReadExec,
        "the app",
        true,
        rules,
    )?;
    for (dir, why) in [
        (&policy.tmp_dir, "the private temp directory"),
        (&policy.state_dir, "the state directory"),
    ] {
        rules.push(rule(dir, Access::ReadWrite, why, true));
    }
    for t in &policy.tiers {
        let (access, why) = match t.access {
            TierAccess::ReadOnly if t.file_mode.0 & 0o111 != 0 => {
                (Access::ReadExec, "a read-only tier")
            }
            TierAccess::ReadOnly => (Access::Read, "a read-only tier"),
            TierAccess::ReadWrite => (Access::ReadWrite, "a read-write tier"),
        };
        rules.push(rule(&t.path, access, why, true));
    }

    // The runtime.
    for d in SYSTEM_EXEC {
        rules.push(rule(
            Path::new(d),
            Access::ReadExec,
            "system programs",
            false,
        ));
    }
    for d in SYSTEM_READ {
        rules.push(rule(Path::new(d), Access::Read, "a kernel view", false));
    }
    etc(rules);
    for d in DEVICES_RW {
        rules.push(rule(
            Path::new(d),
            Access::Device,
            "a standard device",
            false,
        ));
    }
    for d in DEVICES_READ {
        rules.push(rule(Path::new(d), Access::Read, "a standard device", false));
    }
    if sb.shm {
        rules.push(rule(
            Path::new("/dev/shm"),
            Access::ReadWrite,
            "POSIX shared memory (sandbox.shm)",
            false,
        ));
    }
    for d in &sb.devices {
        devices(*d, rules);
    }
    runtime(program, env, rules);

    // The policy's own paths.
    for (list, access, key) in [
        (&sb.read, Access::ReadExec, "sandbox.read"),
        (&sb.write, Access::ReadWrite, "sandbox.write"),
    ] {
        for path in list {
            rules.push(rule(&resolve(&policy.root, path), access, key, true));
        }
    }

    let mut ports: Vec<u16> = policy.service.listen.iter().map(|a| a.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    p.bind_ports = ports;
    Ok(p)
}

/// A `sandbox.read` / `sandbox.write` entry: absolute, or relative to the deployment.
pub fn resolve(root: &Path, raw: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in root.join(raw).components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

fn rule(path: &Path, access: Access, why: &str, required: bool) -> Rule {
    Rule {
        path: path.to_owned(),
        access,
        why: why.to_owned(),
        required,
    }
}

pub(crate) fn preset_name(d: DevicePreset) -> &'static str {
    match d {
        DevicePreset::Nvidia => "nvidia",
        DevicePreset::Dri => "dri",
    }
}

/// Gives `access` on `dir` and everything beneath it except the `excluded` paths (which get
/// rules of their own): directories on the way to an excluded path are only listable, and their
/// other entries get `access` one by one. Symlinks get no rule (their targets are reached, or
/// not, on their own); neither do sockets, fifos and devices.
pub(crate) fn cover(
    dir: &Path,
    excluded: &[PathBuf],
    access: Access,
    why: &str,
    required: bool,
    out: &mut Vec<Rule>,
) -> Result<(), Error> {
    if excluded.iter().any(|x| x == dir) {
        return Ok(());
    }
    let inner: Vec<&PathBuf> = excluded.iter().filter(|x| x.starts_with(dir)).collect();
    if inner.is_empty() {
        out.push(rule(dir, access, why, required));
        return Ok(());
    }
    out.push(rule(dir, Access::List, why, required));
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) if !required => return Ok(()),
        Err(source) => {
            return Err(Error::Path {
                why: format!("cannot list {why}"),
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut children: Vec<(PathBuf, std::fs::FileType)> = entries
        .flatten()
        .filter_map(|e| e.file_type().ok().map(|t| (e.path(), t)))
        .collect();
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, ty) in children {
        if ty.is_symlink() || excluded.contains(&path) {
            continue;
        }
        if ty.is_dir() {
            if inner.iter().any(|x| x.starts_with(&path)) {
                cover(&path, excluded, access, why, false, out)?;
            } else {
                out.push(rule(&path, access, why, false));
            }
        } else if ty.is_file() {
            out.push(rule(&path, access, why, false));
        }
    }
    Ok(())
}

/// `/etc` without its secrets (and the SSH host keys), plus the targets of its symlinks that
/// lead outside it (e.g. `/etc/resolv.conf` into `/run`).
fn etc(out: &mut Vec<Rule>) {
    let etc = Path::new("/etc");
    let mut secrets: Vec<PathBuf> = ETC_SECRETS.iter().map(PathBuf::from).collect();
    if let Ok(entries) = std::fs::read_dir("/etc/ssh") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ssh_host_") && !name.ends_with(".pub") {
                secrets.push(e.path());
            }
        }
    }
    let _ = cover(
        etc,
        &secrets,
        Access::Read,
        "system configuration",
        false,
        out,
    );
    let Ok(entries) = std::fs::read_dir(etc) else {
        return;
    };
    let mut extra = Vec::new();
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_symlink()) {
            continue;
        }
        let Ok(target) = e.path().canonicalize() else {
            continue;
        };
        let covered = ["/etc", "/usr", "/proc", "/sys"]
            .iter()
            .any(|d| target.starts_with(d));
        let secret = secrets.iter().any(|s| target.starts_with(s));
        if !covered && !secret && target.is_file() {
            extra.push(rule(
                &target,
                Access::Read,
                "system configuration (a link target)",
                false,
            ));
        }
    }
    extra.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(extra);
}

fn devices(d: DevicePreset, out: &mut Vec<Rule>) {
    let why = format!("the {} device preset", preset_name(d));
    match d {
        DevicePreset::Nvidia => {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/dev")
                .map(|es| {
                    es.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with("nvidia"))
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            if found.is_empty() {
                found.push(PathBuf::from("/dev/nvidiactl"));
            }
            for p in found {
                out.push(rule(&p, Access::Device, &why, false));
            }
            out.push(rule(
                Path::new("/proc/driver/nvidia"),
                Access::Read,
                &why,
                false,
            ));
            // CUDA names its threads through /proc/self/task/*/comm; the helper opens this
            // path, so it is the service's own task directory.
            out.push(rule(
                Path::new("/proc/self/task"),
                Access::Device,
                &why,
                false,
            ));
        }
        DevicePreset::Dri => {
            out.push(rule(Path::new("/dev/dri"), Access::Device, &why, false));
        }
    }
}

/// The program's own install: a Python venv or conda env above the program, above the
/// interpreter of a script, or above a PATH directory; else the program's directory when no
/// other rule lets it run.
fn runtime(program: Option<&Path>, env: &BTreeMap<String, String>, out: &mut Vec<Rule>) {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = program {
        candidates.push(p.to_owned());
        if let Ok(real) = p.canonicalize() {
            candidates.push(real);
        }
        if let Some(interp) = shebang(p) {
            if let Ok(real) = interp.canonicalize() {
                candidates.push(real);
            }
            candidates.push(interp);
        }
    }
    if let Some(path) = env.get("PATH") {
        for d in path.split(':').filter(|d| d.starts_with('/')) {
            candidates.push(Path::new(d).join("."));
        }
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    for c in &candidates {
        if let Some(root) = env_root(c)
            && !roots.contains(&root)
        {
            roots.push(root);
        }
    }
    for root in &roots {
        out.push(rule(
            root,
            Access::ReadExec,
            "the program's environment",
            false,
        ));
        if let Some(home) = venv_home(root) {
            out.push(rule(
                &home,
                Access::ReadExec,
                "the Python installation of the venv",
                false,
            ));
        }
    }
    if let Some(p) = program {
        let real = p.canonicalize().unwrap_or_else(|_| p.to_owned());
        let runnable = |f: &Path| {
            out.iter()
                .any(|r| r.access == Access::ReadExec && f.starts_with(&r.path))
        };
        if !runnable(&real)
            && let Some(dir) = real.parent()
        {
            out.push(rule(dir, Access::ReadExec, "the program's directory", true));
        }
    }
}

/// The interpreter named by a script's `#!` line.
fn shebang(p: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(p).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let text = std::str::from_utf8(line).ok()?;
    let interp = text.split_whitespace().next()?;
    interp.starts_with('/').then(|| PathBuf::from(interp))
}

/// The root of the Python venv (`pyvenv.cfg`) or conda env (`conda-meta/`) that holds `p`.
fn env_root(p: &Path) -> Option<PathBuf> {
    let mut dir = p.parent();
    while let Some(d) = dir {
        if d == Path::new("/") {
            return None;
        }
        if d.join("pyvenv.cfg").is_file() || d.join("conda-meta").is_dir() {
            return Some(d.to_owned());
        }
        dir = d.parent();
    }
    None
}

/// The installation prefix a venv was made from (`home = PREFIX/bin` in `pyvenv.cfg`), when it
/// is not already a system directory.
fn venv_home(root: &Path) -> Option<PathBuf> {
    let cfg = std::fs::read_to_string(root.join("pyvenv.cfg")).ok()?;
    let home = cfg.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "home").then(|| PathBuf::from(v.trim()))
    })?;
    let prefix = home.parent()?.to_owned();
    let system = SYSTEM_EXEC.iter().any(|d| prefix.starts_with(d));
    (!system && prefix.is_absolute() && prefix != Path::new("/")).then_some(prefix)
}
