//! `warden export systemd|k8s`: write the policy as a unit or as manifests.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Outcome;
use crate::cli::{ExportArgs, ExportK8sArgs, ExportSystemdArgs, ExportTarget, JitArg};
use crate::export::{Export, k8s, systemd};
use crate::policy::Policy;
use crate::term;

pub fn run(policy: &Policy, args: &ExportArgs) -> Result<Outcome> {
    match &args.target {
        ExportTarget::Systemd(a) => run_systemd(policy, a),
        ExportTarget::K8s(a) => run_k8s(policy, a),
    }
}

fn run_systemd(policy: &Policy, args: &ExportSystemdArgs) -> Result<Outcome> {
    let version = args.systemd_version.unwrap_or_else(local_systemd_version);
    let warden = if args.no_warden {
        None
    } else {
        Some(match &args.warden_bin {
            Some(p) => std::path::absolute(p)
                .with_context(|| format!("cannot resolve {}", term::path(p)))?,
            None => std::env::current_exe()
                .and_then(|p| p.canonicalize())
                .context("cannot find the warden binary for ExecStart (pass --warden-bin)")?,
        })
    };
    let opts = systemd::Options {
        version,
        warden,
        jit: match args.jit {
            JitArg::Auto => systemd::Jit::Auto,
            JitArg::Deny => systemd::Jit::Deny,
            JitArg::Allow => systemd::Jit::Allow,
        },
    };
    let export = systemd::unit(policy, &opts)?;
    emit(&export, args.output.as_deref())
}

fn run_k8s(policy: &Policy, args: &ExportK8sArgs) -> Result<Outcome> {
    let policy_text = std::fs::read_to_string(&policy.file)
        .with_context(|| format!("cannot read {}", term::path(&policy.file)))?;
    let weights_size = match &args.weights_size {
        Some(s) => s.clone(),
        None => tiers_size(policy).map_or_else(|| "100Gi".to_owned(), gib_with_margin),
    };
    let opts = k8s::Options {
        policy_text,
        image: args.image.clone(),
        digest: args.digest.clone(),
        namespace: args.namespace.clone(),
        uid: args.uid,
        gid: args.gid.unwrap_or(args.uid),
        cpu: args.cpu.clone(),
        cpu_limit: args.cpu_limit.clone(),
        memory: args.memory.clone(),
        gpus: args.gpus,
        gpu_resource: args.gpu_resource.clone(),
        replicas: args.replicas,
        weights_claim: args.weights_claim.clone(),
        weights_size,
        shm_size: args.shm_size.clone(),
    };
    let export = k8s::manifests(policy, &opts)?;
    emit(&export, args.output.as_deref())
}

/// Writes the text (to FILE atomically, or stdout) and the notes (stderr).
fn emit(export: &Export, output: Option<&Path>) -> Result<Outcome> {
    match output.filter(|p| *p != Path::new("-")) {
        Some(path) => {
            write_atomic(path, export.text.as_bytes())
                .with_context(|| format!("cannot write {}", term::path(path)))?;
            eprintln!("warden: wrote {}", term::path(path));
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(export.text.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write to stdout")?;
        }
    }
    for n in &export.notes {
        eprintln!("warden: note: {}", term::escape(n));
    }
    Ok(Outcome::Clean)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The local systemd's version, or [`systemd::DEFAULT_VERSION`].
fn local_systemd_version() -> u32 {
    [
        "systemd",
        "/lib/systemd/systemd",
        "/usr/lib/systemd/systemd",
    ]
    .iter()
    .find_map(|cmd| {
        let out = std::process::Command::new(cmd)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        systemd::parse_version(&String::from_utf8_lossy(&out.stdout))
    })
    .unwrap_or(systemd::DEFAULT_VERSION)
}

/// The bytes of the read-only tiers here (symlinks not followed), if any tier exists.
fn tiers_size(policy: &Policy) -> Option<u64> {
    fn walk(p: &Path, total: &mut u64) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), total);
                }
            }
        } else if m.is_file() {
            *total = total.saturating_add(m.len());
        }
    }
    let mut total = 0;
    let mut any = false;
    for t in policy.read_only_tiers() {
        // A tier nested in another is counted with its parent.
        if policy
            .read_only_tiers()
            .any(|o| o.path != t.path && t.path.starts_with(&o.path))
        {
            continue;
        }
        if t.path.is_dir() {
            any = true;
            walk(&t.path, &mut total);
        }
    }
    any.then_some(total)
}

/// Bytes plus 10%, rounded up to whole GiB (at least 1Gi).
fn gib_with_margin(bytes: u64) -> String {
    let with = bytes.saturating_add(bytes / 10);
    let gib = with.div_ceil(1 << 30).max(1);
    format!("{gib}Gi")
}
