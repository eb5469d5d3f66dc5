//! The on-disk shape of `warden.toml`: serde structs with kebab-case keys, unknown keys
//! rejected, defaults filled in. Paths here are still as written; `Policy` resolves them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::values::{AccountName, ByteSize, HumanDuration, Mode};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    pub service: Service,
    #[serde(default, rename = "tier")]
    pub tiers: Vec<Tier>,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub tmp: Tmp,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub sandbox: Sandbox,
    #[serde(default)]
    pub integrity: Integrity,
}

/// `[service]`: what runs, as whom, and where it may listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    pub name: String,
    pub command: Vec<String>,
    #[serde(default = "dot")]
    pub workdir: String,
    pub user: AccountName,
    /// The service's primary group; defaults to the user's name.
    #[serde(default)]
    pub group: Option<AccountName>,
    /// Supplementary groups (e.g. `video`, `render` for GPUs). They must exist.
    #[serde(default)]
    pub groups: Vec<AccountName>,
    /// Addresses the service may listen on.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: HumanDuration,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub ready: Option<Ready>,
    /// Run the service as root. Refused unless set.
    #[serde(default)]
    pub allow_root: bool,
    /// Allow public tunnels (`--share`, `GRADIO_SHARE=True`). Refused unless set.
    #[serde(default)]
    pub allow_share: bool,
}

fn dot() -> String {
    ".".to_owned()
}

fn default_stop_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(15))
}

/// `restart = { policy, max, within }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Restart {
    #[serde(default)]
    pub policy: RestartPolicy,
    #[serde(default = "default_restart_max")]
    pub max: u32,
    #[serde(default = "default_restart_within")]
    pub within: HumanDuration,
}

impl Default for Restart {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::default(),
            max: default_restart_max(),
            within: default_restart_within(),
        }
    }
}

fn default_restart_max() -> u32 {
    5
}

fn default_restart_within() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}

/// When the supervisor restarts the service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    #[default]
    OnFailure,
    Always,
}

/// `ready = { http = "...", timeout = "120s" }` or `{ tcp = "127.0.0.1:7860" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ready {
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    #[serde(default = "default_ready_timeout")]
    pub timeout: HumanDuration,
}

fn default_ready_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// `[[tier]]`: a part of the deployment with its own ownership and modes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tier {
    pub path: String,
    #[serde(default)]
    pub access: Access,
    /// Owner of a read-only tier (never the service account). Default `root`.
    #[serde(default)]
    pub owner: Option<AccountName>,
    /// Group of the tier. Default: the service's group.
    #[serde(default)]
    pub group: Option<AccountName>,
    /// Mode of regular files. Default 0440 (read-only) or 0640 (read-write).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Mode of directories. Default 0550 (read-only) or 0750 (read-write).
    #[serde(default)]
    pub dir_mode: Option<Mode>,
    /// Include the tier in the integrity manifest and the scan. Default: true when read-only.
    #[serde(default)]
    pub seal: Option<bool>,
}

/// How the service may use a tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    #[default]
    ReadOnly,
    ReadWrite,
}

/// `[logs]`: where captured output goes and what is kept of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Logs {
    #[serde(default = "default_logs_dir")]
    pub dir: String,
    #[serde(default)]
    pub level: Level,
    #[serde(default = "default_redact")]
    pub redact: Vec<RedactSet>,
    #[serde(default)]
    pub rotate: Rotate,
    #[serde(default = "default_log_file_mode")]
    pub file_mode: Mode,
    /// Longer lines are cut into pieces of this size, each piece marked.
    #[serde(default = "default_max_line")]
    pub max_line: ByteSize,
    /// Custom redaction rules, `[[logs.rule]]`, applied after the built-in sets.
    #[serde(default, rename = "rule")]
    pub rules: Vec<LogRule>,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            dir: default_logs_dir(),
            level: Level::default(),
            redact: default_redact(),
            rotate: Rotate::default(),
            file_mode: default_log_file_mode(),
            max_line: default_max_line(),
            rules: Vec::new(),
        }
    }
}

fn default_max_line() -> ByteSize {
    ByteSize(16 << 10)
}

/// `[[logs.rule]]`: a custom redaction rule. Matches of `pattern` (a regular expression) are
/// replaced by `replace` (`$1`-style group references allowed), by default `[REDACTED:NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogRule {
    pub name: String,
    pub pattern: LogPattern,
    #[serde(default)]
    pub replace: Option<String>,
}

/// A regular expression, checked when the policy is read so that a bad one is reported at its
/// own line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPattern(pub String);

impl<'de> Deserialize<'de> for LogPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::bytes::Regex::new(&s)
            .map(|_| LogPattern(s))
            .map_err(|e| serde::de::Error::custom(format!("invalid pattern: {e}")))
    }
}

fn default_logs_dir() -> String {
    "logs".to_owned()
}

fn default_redact() -> Vec<RedactSet> {
    vec![RedactSet::Prompts, RedactSet::Secrets, RedactSet::Pii]
}

fn default_log_file_mode() -> Mode {
    Mode(0o640)
}

/// Minimum log level kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Trace,
    Debug,
    #[default]
    Info,
    Warning,
    Error,
    Critical,
}

/// A rule set of the redactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedactSet {
    Prompts,
    Secrets,
    Pii,
    Ip,
}

/// `rotate = { every, size, keep, compress, delay-compress }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rotate {
    #[serde(default)]
    pub every: Every,
    #[serde(default)]
    pub size: Option<ByteSize>,
    #[serde(default = "default_keep")]
    pub keep: u32,
    #[serde(default = "yes")]
    pub compress: bool,
    #[serde(default = "yes")]
    pub delay_compress: bool,
}

impl Default for Rotate {
    fn default() -> Self {
        Self {
            every: Every::default(),
            size: None,
            keep: default_keep(),
            compress: true,
            delay_compress: true,
        }
    }
}

fn default_keep() -> u32 {
    7
}

fn yes() -> bool {
    true
}

/// Time-based rotation period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Every {
    Hourly,
    #[default]
    Daily,
    Never,
}

/// `[tmp]`: the service's private temp directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tmp {
    #[serde(default = "default_tmp_dir")]
    pub dir: String,
    /// Empty the directory before each start.
    #[serde(default)]
    pub clean_on_start: bool,
}

impl Default for Tmp {
    fn default() -> Self {
        Self {
            dir: default_tmp_dir(),
            clean_on_start: false,
        }
    }
}

fn default_tmp_dir() -> String {
    "tmp".to_owned()
}

/// `[state]`: warden's and the service's private state (lock, pid file, manifest, HOME).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct State {
    #[serde(default = "default_state_dir")]
    pub dir: String,
}

impl Default for State {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
        }
    }
}

fn default_state_dir() -> String {
    "state".to_owned()
}

/// `[sandbox]`: kernel-enforced limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Sandbox {
    #[serde(default)]
    pub landlock: Enforcement,
    #[serde(default)]
    pub devices: Vec<DevicePreset>,
    /// RLIMIT_NPROC for the account.
    #[serde(default)]
    pub nproc: Option<u64>,
    /// RLIMIT_NOFILE for the service.
    #[serde(default)]
    pub nofile: Option<u64>,
    /// Extra paths the service may read and execute (absolute, or relative to the deployment).
    #[serde(default)]
    pub read: Vec<String>,
    /// Extra paths the service may read and write (never execute).
    #[serde(default)]
    pub write: Vec<String>,
    /// POSIX shared memory and semaphores in /dev/shm (Python multiprocessing, Gradio, torch
    /// data loaders need them). Default true; the service's files there are 0600 (umask 077).
    #[serde(default = "yes")]
    pub shm: bool,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            landlock: Enforcement::default(),
            devices: Vec::new(),
            nproc: None,
            nofile: None,
            read: Vec::new(),
            write: Vec::new(),
            shm: true,
        }
    }
}

/// How strictly a security feature is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    Required,
    #[default]
    BestEffort,
    Off,
}

/// Device sets the service may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DevicePreset {
    Nvidia,
    Dri,
}

/// `[integrity]`: verification and scanning before start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Integrity {
    #[serde(default)]
    pub verify: Verify,
    #[serde(default = "yes")]
    pub scan: bool,
    #[serde(default)]
    pub digest: Digest,
}

impl Default for Integrity {
    fn default() -> Self {
        Self {
            verify: Verify::default(),
            scan: true,
            digest: Digest::default(),
        }
    }
}

/// How the sealed tiers are verified before each start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verify {
    Off,
    #[default]
    Quick,
    Full,
}

/// Digest of the integrity manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Digest {
    #[default]
    Sha256,
    Blake3,
}
