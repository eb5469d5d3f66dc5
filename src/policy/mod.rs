//! `warden.toml`: parsing (strict, with line and column on every error), path resolution
//! relative to the policy file, and validation. Every command works from a [`Policy`], never
//! from the file itself.

mod locate;
pub mod schema;
mod validate;
pub mod values;

use std::fmt;
use std::path::{Path, PathBuf};

pub use schema::{Access, Enforcement, Level, RestartPolicy};
pub use values::{AccountName, ByteSize, HumanDuration, Mode};

/// The file name `warden` looks for when no `--policy` is given.
pub const DEFAULT_FILE: &str = "warden.toml";

/// Default modes of read-only tiers.
pub const RO_FILE_MODE: Mode = Mode(0o440);
/// Default directory mode of read-only tiers.
pub const RO_DIR_MODE: Mode = Mode(0o550);
/// Default modes of read-write tiers.
pub const RW_FILE_MODE: Mode = Mode(0o640);
/// Default directory mode of read-write tiers.
pub const RW_DIR_MODE: Mode = Mode(0o750);

/// A validated policy: every path absolute, every default filled in.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy file.
    pub file: PathBuf,
    /// The deployment root: the directory that holds the policy file.
    pub root: PathBuf,
    /// The service's working directory.
    pub workdir: PathBuf,
    /// `[service]` as written (paths resolved separately).
    pub service: schema::Service,
    /// The service's primary group (defaults to the user's name).
    pub group: AccountName,
    /// Tiers, ordered from least to most specific (a later tier wins over an earlier one it
    /// contains).
    pub tiers: Vec<Tier>,
    /// The private places the service owns.
    pub logs_dir: PathBuf,
    pub tmp_dir: PathBuf,
    pub state_dir: PathBuf,
    pub logs: schema::Logs,
    pub tmp: schema::Tmp,
    pub sandbox: schema::Sandbox,
    pub integrity: schema::Integrity,
    /// Non-fatal remarks found while validating.
    pub warnings: Vec<Diagnostic>,
}

/// A tier with its path resolved and its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// Absolute path.
    pub path: PathBuf,
    /// Path relative to the deployment root, as shown to people.
    pub rel: PathBuf,
    pub access: Access,
    pub owner: AccountName,
    pub group: AccountName,
    pub file_mode: Mode,
    pub dir_mode: Mode,
    pub seal: bool,
}

/// One problem in the policy file, located as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The dotted key involved, e.g. `tier[1].path`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        f.write_str(": ")?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diags: &[Diagnostic]) -> String {
    let mut s = format!(
        "the policy has {} error{}:",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
    for d in diags {
        s.push_str("\n  ");
        s.push_str(&d.to_string());
    }
    s
}

impl PolicyError {
    /// The located problems, when the file was read but is not valid.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid(d) => d,
            Self::Read { .. } => &[],
        }
    }
}

impl Policy {
    /// Reads, parses and validates the policy file at `path`.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = std::path::absolute(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str(&text, &file)
    }

    /// Parses and validates policy text as if it were the file at `file` (an absolute path);
    /// relative paths resolve against its directory.
    pub fn from_str(text: &str, file: &Path) -> Result<Self, PolicyError> {
        let parsed: schema::File = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((None, None), |s| {
                let (l, c) = locate::line_col(text, s.start);
                (Some(l), Some(c))
            });
            PolicyError::Invalid(vec![Diagnostic {
                file: file.to_owned(),
                line,
                column,
                key: None,
                message: e.message().trim().to_owned(),
            }])
        })?;
        validate::resolve(parsed, text, file)
    }

    /// The tier that governs `path` (the most specific one containing it), if any.
    pub fn tier_for(&self, path: &Path) -> Option<&Tier> {
        self.tiers.iter().rev().find(|t| path.starts_with(&t.path))
    }

    /// Read-only tiers.
    pub fn read_only_tiers(&self) -> impl Iterator<Item = &Tier> {
        self.tiers.iter().filter(|t| t.access == Access::ReadOnly)
    }
}

#[cfg(test)]
mod tests;
