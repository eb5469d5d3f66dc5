//! `warden init`'s library side: look at a deployment directory and propose a policy. The
//! weights are found by content (see [`crate::scan`]) and grouped into read-only tiers, the
//! command and its address are guessed from the start script or app file, and the proposal is
//! rendered as a commented warden.toml that passes validation.

mod command;
mod render;
mod shell;
mod tiers;
mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use command::{Guess, Server};
pub use tiers::{TierKind, TierProposal};

use crate::policy::AccountName;
use crate::term;

/// Account names that are never proposed: system accounts, and groups with power.
const RESERVED: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "nobody",
    "nogroup",
    "sshd",
    "messagebus",
    "adm",
    "admin",
    "sudo",
    "wheel",
    "docker",
    "staff",
    "users",
    "video",
    "render",
    "disk",
    "shadow",
];

/// Files that mark a directory as holding the app's code (no tier may contain it).
const APP_MARKERS: &[&str] = &[
    "start.sh",
    "run.sh",
    "requirements.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "Pipfile",
    "environment.yml",
    "package.json",
    "Dockerfile",
    "app.py",
    "app_gradio.py",
    "main.py",
    "server.py",
    "webui.py",
];

/// Why no proposal could be made.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot use the deployment directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("--user: {0}")]
    User(String),
}

/// A private directory proposed for `[logs]`, `[tmp]` or `[state]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Private {
    /// Relative to the root.
    pub dir: String,
    /// Whether it is already there.
    pub exists: bool,
}

/// Everything `warden init` proposes.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The deployment root (canonical).
    pub root: PathBuf,
    /// `service.name`.
    pub name: String,
    /// `service.user`.
    pub user: String,
    /// Whether the account name was derived from the directory (not given with --user).
    pub user_derived: bool,
    pub guess: Guess,
    pub tiers: Vec<TierProposal>,
    pub logs: Private,
    pub tmp: Private,
    pub state: Private,
    /// Weight files in the whole tree, by format name: count and bytes.
    pub formats: BTreeMap<&'static str, (usize, u64)>,
    /// Regular files walked and their total size.
    pub files: usize,
    pub bytes: u64,
    /// Whether an NVIDIA GPU is visible (`/dev/nvidiactl`).
    pub nvidia: bool,
    /// Problems to tell the person (escaped for a terminal).
    pub warnings: Vec<String>,
}

/// Looks at the deployment `dir` and proposes a policy; `user` is the account to propose.
pub fn propose(dir: &Path, user: Option<&str>) -> Result<Proposal, InitError> {
    let root = dir.canonicalize().map_err(|source| InitError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    if !root.is_dir() {
        return Err(InitError::NotADirectory { path: root });
    }
    let (user, user_derived) = match user {
        Some(u) => (AccountName::parse(u).map_err(InitError::User)?.0, false),
        None => (account_from_dir(&root), true),
    };

    let logs = pick_private(&root, &["logs", "log"], "service-logs");
    let tmp = pick_private(&root, &["tmp"], "service-tmp");
    let state = pick_private(&root, &["state"], "service-state");
    let tree = walk::walk(&root, &[&logs.dir, &tmp.dir, &state.dir]);
    let mut guess = command::guess(&root, &tree.venvs);

    // Directories no tier may contain: the app's, the private ones, environments.
    let mut blocked: Vec<PathBuf> = vec![PathBuf::new()];
    if let Some(s) = &guess.script {
        blocked.push(s.parent().unwrap_or(Path::new("")).to_owned());
    }
    for (dir, names) in &tree.entries {
        if APP_MARKERS
            .iter()
            .any(|m| names.contains(std::ffi::OsStr::new(m)))
        {
            blocked.push(dir.clone());
        }
    }
    blocked.extend([&logs.dir, &tmp.dir, &state.dir].map(PathBuf::from));
    blocked.extend(tree.venvs.iter().cloned());
    let mut tiers = tiers::group(&tree, &blocked);

    let mut warnings = Vec::new();
    tiers.retain(|t| {
        let ok = t.rel.to_str().is_some();
        if !ok {
            warnings.push(format!(
                "{} holds weights but its name is not UTF-8, which warden.toml cannot hold: \
                 rename it and run init again",
                term::path(&t.rel)
            ));
        }
        ok
    });
    if tiers.iter().any(|t| t.kind == TierKind::HfCache)
        && !guess.env.contains_key("HF_HUB_OFFLINE")
    {
        guess.env.insert("HF_HUB_OFFLINE".into(), "1".into());
        guess.notes.push(
            "HF_HUB_OFFLINE=1: the Hugging Face cache is read-only, so the hub library must not \
             try to update it."
                .into(),
        );
    }

    let mut formats: BTreeMap<&'static str, (usize, u64)> = BTreeMap::new();
    let mut pickles = Vec::new();
    for f in tree.files.iter().filter(|f| f.format.is_weights()) {
        let e = formats.entry(f.format.name()).or_default();
        e.0 += 1;
        e.1 += f.size;
        if f.format.runs_code() {
            pickles.push(f);
        }
    }

    warnings.append(&mut guess.warnings.clone());
    if guess.command.is_none() {
        warnings.push(
            "no start script or obvious app file: the command is a placeholder (CHANGE-ME) to \
             fill in"
                .into(),
        );
    }
    for f in pickles.iter().take(10) {
        warnings.push(format!(
            "{} is a pickle: it runs code when loaded ({}); prefer a safetensors version",
            term::path(&f.rel),
            f.format
        ));
    }
    if pickles.len() > 10 {
        warnings.push(format!(
            "and {} more pickle files: each runs code when loaded",
            pickles.len() - 10
        ));
    }
    if tiers.is_empty() {
        warnings.push(
            "no model weights were found (they are recognised by content, not name): add a \
             [[tier]] for each directory the service must only read"
                .into(),
        );
    }
    for f in &tree.files {
        let top = f.rel.components().count() == 1;
        if top && f.rel.extension().is_some_and(|e| e == "log") {
            warnings.push(format!(
                "{} is a log the app wrote itself: it may hold users' prompts; remove it once \
                 it is no longer needed (warden's logs go to {}/, redacted)",
                term::path(&f.rel),
                term::escape(&logs.dir)
            ));
        }
    }
    for (link, target) in &tree.links {
        let real = root.join(link).canonicalize();
        if let Ok(real) = real
            && real.is_dir()
            && !real.starts_with(&root)
        {
            warnings.push(format!(
                "{} is a symlink to {}, outside the deployment: not followed, and a tier cannot \
                 be outside the deployment; move or copy what it holds inside",
                term::path(link),
                term::path(target)
            ));
        }
    }
    if let Some(first) = tree.errors.first() {
        warnings.push(format!(
            "{} files or directories could not be read (first: {first}); weights among them \
             were not found (run init as a user who can read everything)",
            tree.errors.len()
        ));
    }

    Ok(Proposal {
        name: service_name(&root),
        user,
        user_derived,
        guess,
        tiers,
        logs,
        tmp,
        state,
        formats,
        files: tree.files.len(),
        bytes: tree.files.iter().map(|f| f.size).sum(),
        nvidia: Path::new("/dev/nvidiactl").exists(),
        warnings,
        root,
    })
}

impl Proposal {
    /// The proposed warden.toml, commented.
    pub fn to_toml(&self) -> String {
        render::render(self)
    }

    /// A short summary for people (escaped for a terminal), without the warnings.
    pub fn summary(&self) -> String {
        render::summary(self)
    }
}

/// The first candidate that is a directory, else the first that does not exist, else the
/// fallback.
fn pick_private(root: &Path, candidates: &[&str], fallback: &str) -> Private {
    let kind = |n: &str| std::fs::symlink_metadata(root.join(n)).map(|m| m.is_dir());
    if let Some(n) = candidates.iter().find(|n| kind(n).is_ok_and(|d| d)) {
        return Private {
            dir: (*n).to_owned(),
            exists: true,
        };
    }
    let dir = candidates
        .iter()
        .find(|n| kind(n).is_err())
        .copied()
        .unwrap_or(fallback);
    Private {
        dir: dir.to_owned(),
        exists: false,
    }
}

/// An account name from the directory's name: lowercase, other characters as `-`, starting
/// with a letter, at most 32 characters, never a system account.
pub fn account_from_dir(root: &Path) -> String {
    let base = root
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in base.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    let mut name = name.trim_matches('-').to_owned();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || RESERVED.contains(&name.as_str()) {
        name = if name.is_empty() {
            "svc".into()
        } else {
            format!("svc-{}", name.trim_start_matches(['_', '-']))
        };
    }
    name.truncate(32);
    name.trim_end_matches('-').to_owned()
}

/// `service.name` from the directory's name: letters, digits, `-_.@`, at most 64.
fn service_name(root: &Path) -> String {
    let base = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_owned();
    name.truncate(64);
    if name.is_empty() || name.chars().all(|c| c == '.') {
        "service".into()
    } else {
        name
    }
}

/// A size for people: `512 B`, `1.5 KiB`, `13.2 GiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests;
