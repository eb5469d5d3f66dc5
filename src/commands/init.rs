//! `warden init`: propose a warden.toml for a deployment directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::Outcome;
use crate::cli::InitArgs;
use crate::init;
use crate::policy::{self, Policy};
use crate::term;

pub fn run(args: &InitArgs) -> Result<Outcome> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    let target = match &args.output {
        _ if to_stdout => None,
        Some(p) => Some(p.clone()),
        None => Some(dir.join(policy::DEFAULT_FILE)),
    };
    // Fail before walking a large tree.
    if let Some(t) = &target {
        refuse_existing(t, args.force)?;
    }

    let proposal = init::propose(&dir, args.user.as_deref())?;
    let text = proposal.to_toml();

    let mut warnings = proposal.warnings.clone();
    // The proposal must pass validation as the deployment's own policy file.
    let as_if = proposal.root.join(policy::DEFAULT_FILE);
    match Policy::from_str(&text, &as_if) {
        Ok(p) => warnings.extend(p.warnings.iter().map(|d| d.message.clone())),
        Err(e) => warnings.push(format!(
            "the proposal does not validate (a bug in init; fix it by hand): {e}"
        )),
    }
    if let Some(t) = &target {
        let parent = t
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if parent.canonicalize().ok().as_deref() != Some(proposal.root.as_path()) {
            warnings.push(format!(
                "{} is not in {}: the policy's paths are relative to the directory that holds \
                 it, so move it there before using it",
                term::path(t),
                term::path(&proposal.root)
            ));
        }
    }

    eprint!("{}", proposal.summary());
    for w in &warnings {
        // Already escaped where built; escaping again is a no-op and covers validator text.
        eprintln!("warden: warning: {}", term::escape(w));
    }
    match &target {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write the policy to stdout")?;
        }
        Some(t) => {
            write_policy(t, &text, args.force)?;
            eprintln!(
                "warden: wrote {}: read it, then run `warden validate -c {}`",
                term::path(t),
                term::path(t)
            );
        }
    }
    Ok(Outcome::Clean)
}

fn refuse_existing(target: &Path, force: bool) -> Result<()> {
    if !force && std::fs::symlink_metadata(target).is_ok() {
        bail!(
            "{} already exists: use --force to overwrite it, or -o FILE to write elsewhere \
             (-o - prints it)",
            term::path(target)
        );
    }
    Ok(())
}

/// Writes the policy: a new file, or with `force` a replacement put in place by rename (a
/// symlink at the target is replaced, never followed).
fn write_policy(target: &Path, text: &str, force: bool) -> Result<()> {
    let create = |path: &Path| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    if !force {
        return create(target).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists: use --force to overwrite it, or -o FILE to write \
                     elsewhere (-o - prints it)",
                    term::path(target)
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot write {}", term::path(target)))
            }
        });
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| policy::DEFAULT_FILE.to_owned());
    let tmp = target.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = create(&tmp).and_then(|()| std::fs::rename(&tmp, target));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", term::path(target)))
}
