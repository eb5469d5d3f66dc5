//! The service's output: captured through a pipe (the service never holds a writable log file),
//! split into lines, filtered by level, redacted, time-stamped and written into the log
//! directory, with rotation between lines; and read back, rotated files included.
//!
//! Each line of `LOGS/NAME.log` is `TIMESTAMP TEXT`, the timestamp in RFC 3339 UTC with
//! milliseconds (when warden read the line), so `warden logs --since` needs no knowledge of the
//! service's own format.

pub mod capture;
pub mod frame;
pub mod level;
pub mod read;
pub mod redact;
pub mod rotate;

#[doc(hidden)]
pub mod corpus;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::policy::{Level, Policy};

/// Why the log pipeline could not start or a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the service log {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Rule(#[from] redact::RuleError),
}

/// Everything the pipeline needs, taken from the policy.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: rotate::Target,
    pub rotation: rotate::Rotation,
    pub level: Level,
    pub sets: redact::Sets,
    pub rules: Vec<redact::CustomRule>,
    pub max_line: usize,
}

impl Config {
    /// The policy's `[logs]` for the service's log, `LOGS/NAME.log`; `owner` (uid, gid) when
    /// warden runs as root.
    pub fn from_policy(policy: &Policy, owner: Option<(u32, u32)>) -> Self {
        let l = &policy.logs;
        Self {
            target: rotate::Target {
                dir: policy.logs_dir.clone(),
                name: policy.service.name.clone(),
                mode: l.file_mode.0,
                owner,
            },
            rotation: rotate::Rotation {
                every: l.rotate.every,
                size: l.rotate.size.map(|s| s.0),
                keep: l.rotate.keep,
                compress: l.rotate.compress,
                delay_compress: l.rotate.delay_compress,
            },
            level: l.level,
            sets: redact::Sets::from_policy(&l.redact),
            rules: l
                .rules
                .iter()
                .map(|r| redact::CustomRule {
                    name: r.name.clone(),
                    pattern: r.pattern.0.clone(),
                    replace: r.replace.clone(),
                })
                .collect(),
            max_line: usize::try_from(l.max_line.0).unwrap_or(usize::MAX),
        }
    }

    /// The defaults (as an empty `[logs]` gives) for the log `DIR/NAME.log`.
    pub fn for_dir(dir: &Path, name: &str) -> Self {
        let l = crate::policy::schema::Logs::default();
        Self {
            target: rotate::Target {
                dir: dir.to_owned(),
                name: name.to_owned(),
                mode: l.file_mode.0,
                owner: None,
            },
            rotation: rotate::Rotation::default(),
            level: l.level,
            sets: redact::Sets::from_policy(&l.redact),
            rules: Vec::new(),
            max_line: usize::try_from(l.max_line.0).unwrap_or(usize::MAX),
        }
    }
}

/// Length of a line's timestamp, `2025-05-12T11:43:00.123Z`.
pub const TIMESTAMP_LEN: usize = 24;

/// RFC 3339 UTC with milliseconds.
pub fn timestamp(t: SystemTime) -> [u8; TIMESTAMP_LEN] {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, mo, day) = rotate::civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let text = format!(
        "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    );
    let mut out = [b'0'; TIMESTAMP_LEN];
    let n = text.len().min(TIMESTAMP_LEN);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}
