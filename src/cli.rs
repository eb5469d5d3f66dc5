//! Command-line definitions (clap derive). Parsing here only validates flags; nothing touches
//! the system until a command runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run a self-hosted AI model service in production safely.
///
/// warden reads one policy file, warden.toml, that describes the service: the command, the
/// account it runs as, the model tiers that must stay read-only, and its private logs, temp and
/// state directories. Every command works from that file.
///
/// A first deployment:
///   warden init /srv/app          # propose /srv/app/warden.toml from what is there
///   warden validate -c /srv/app/warden.toml
///   sudo warden harden --dry-run -c /srv/app/warden.toml
///   sudo warden harden -c /srv/app/warden.toml
///
/// Exit codes: 0 success or clean, 1 findings (something to fix), 2 usage or runtime error.
#[derive(Debug, Parser)]
#[command(name = "warden", version, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    /// The policy file [default: ./warden.toml]
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "WARDEN_POLICY",
        value_name = "FILE"
    )]
    pub policy: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the policy file and print OK or every error with its line and column.
    Validate(ValidateArgs),
    /// Look at a deployment directory and write a proposed warden.toml.
    ///
    /// Model weights are recognised by their content, never their extension: safetensors headers,
    /// PyTorch zip checkpoints (with a data.pkl), raw pickles, GGUF and ONNX files. Directories of
    /// base models and of adapters become read-only tiers; logs, tmp and state directories are
    /// proposed; the command is guessed from start.sh or the app file when that is obvious.
    #[command(verbatim_doc_comment)]
    Init(InitArgs),
    /// Create the service account and apply the policy's ownership and modes to the tree.
    ///
    /// As root: creates the group and a system account (no login shell, no home created) with the
    /// policy's supplementary groups; read-only tiers become root:GROUP, dirs 0550, files 0440 (or
    /// the policy's modes); logs, tmp and state become the account's, 0700/0750, log files 0640.
    /// Symlinks are never followed. Run again, it changes nothing and says so.
    ///
    /// As an ordinary user: applies what it can (modes of files it owns) and lists what needs root.
    #[command(verbatim_doc_comment)]
    Harden(HardenArgs),
    /// Run the service in the foreground under warden (for systemd and containers).
    ///
    /// Preflight refuses public tunnels (--share, GRADIO_SHARE=True) and binds outside
    /// service.listen. As root, the service runs as the policy's account with a clean
    /// environment, no capabilities, no_new_privs and umask 077; temp and cache variables point
    /// into the private directories. One instance only (a lock in the runtime directory).
    /// Restarts follow service.restart with exponential backoff.
    ///
    /// Its output goes to LOGS/NAME.log and to warden's stdout. SIGTERM or SIGINT stop the
    /// service gracefully (SIGKILL after service.stop-timeout). Exit code: the service's own
    /// when it ends by itself, 0 after a requested stop, 1 when restarts were given up, 2 when
    /// it could not start.
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Start the service in the background and wait until it is ready.
    ///
    /// Exit codes: 0 started and ready, or already running (it says so; nothing is started
    /// twice); 2 it could not start (the last log lines are shown).
    #[command(verbatim_doc_comment)]
    Up,
    /// Stop the service: SIGTERM to its process group, SIGKILL after service.stop-timeout.
    ///
    /// Exit codes: 0 stopped, or it was not running (it says so; a stale PID file is removed
    /// and whatever process now has that PID is left alone); 2 it could not be stopped.
    #[command(verbatim_doc_comment)]
    Stop,
    /// Stop the service if it runs, then start it again (as `stop` then `up`).
    Restart,
    /// Show whether the service runs, as whom, since when, and where it listens.
    ///
    /// Exit codes: 0 running (or starting), 1 failed (restarts given up), 3 stopped.
    #[command(verbatim_doc_comment)]
    Status(StatusArgs),
    /// Show the service's log: the current file and the rotated ones (.gz included), in order.
    ///
    /// Lines are as warden wrote them: a UTC timestamp, then the service's line after level
    /// filtering and redaction. Control characters are escaped when the output is a terminal.
    ///   warden logs -n 50            # the last 50 lines
    ///   warden logs --since 10m      # the last ten minutes (or a time: "2025-05-12 11:43:00")
    ///   warden logs -f               # the last 10 lines, then new ones as they come
    #[command(verbatim_doc_comment)]
    Logs(LogsArgs),
    /// Record the sealed tiers in the integrity manifest: every file's path, size and digest.
    ///
    /// Tiers are sealed when read-only (or with seal = true). SHA-256 by default, the digest
    /// Hugging Face lists for LFS files; BLAKE3 with integrity.digest = "blake3" or --digest.
    /// Symlinks and special files in a sealed tier are refused. Files named by their digest in a
    /// Hugging Face cache (blobs/) must match it. The manifest is written atomically to
    /// STATE/integrity/manifest.json.
    ///
    /// Exit codes: 0 sealed, 2 it could not seal (every problem is listed).
    #[command(verbatim_doc_comment)]
    Seal(SealArgs),
    /// Compare the sealed tiers with the manifest: missing, extra and modified files.
    ///
    /// --quick compares size, mtime, ctime and inode; --full rehashes every file in parallel
    /// (across files and within large ones), with a progress bar on a terminal. The default is
    /// integrity.verify of the policy (quick when it is off). --hf-cache DIR verifies the blobs of
    /// a Hugging Face cache against the digests they are named by, with no policy or manifest.
    ///
    /// Exit codes: 0 identical, 1 differences, 2 error (no manifest, unreadable tree).
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Scan model files for code hidden in them; formats are decided by content, never by name.
    ///
    /// Pickles (raw, in PyTorch zip and legacy checkpoints, in numpy object arrays) are run in an
    /// emulated pickle machine and judged by the allowlist of the loader that reads them;
    /// safetensors and GGUF headers are validated; zip, tar and gzip archives are opened (nested
    /// ones too, within limits). What cannot be checked is a finding. Without PATH, the sealed
    /// tiers of the policy are scanned.
    ///
    /// Exit codes: 0 clean, 1 findings (they win over errors), 2 error only.
    #[command(verbatim_doc_comment)]
    Scan(ScanArgs),
    /// Write the policy as a systemd unit or Kubernetes manifests.
    ///
    /// `export systemd` maps the policy onto systemd's sandboxing (User=, ProtectSystem=strict
    /// with the tiers read-only and the private directories writable, no capabilities, a system
    /// call filter, DevicePolicy=closed, address and port restrictions, Restart=), gated on the
    /// target's systemd version. ExecStart runs `warden run` as the account, so preflight,
    /// integrity checks and log redaction still apply; --no-warden runs the bare command.
    ///
    /// `export k8s` writes a Namespace, ServiceAccount, ConfigMap (the policy), a volume claim
    /// for the weights, a Deployment that meets the "restricted" Pod Security Standard with
    /// warden as the container's entrypoint, a Service and a NetworkPolicy.
    ///
    /// Remarks for the operator go to stderr. Exit codes: 0 written, 2 error.
    #[command(verbatim_doc_comment)]
    Export(ExportArgs),
    /// Audit the deployment for production: every hole found, with its fix.
    ///
    /// Checks: the service not running as root and its account without a login shell;
    /// read-only tiers owned and moded as the policy says and not by the account; nothing
    /// world-writable, no setuid/setgid file; every directory above the deployment owned by root
    /// (or the tiers' admin), not writable by others, and traversable by the account; log
    /// directory and file modes, stray readable logs, rotation; temp and state 0700; where it
    /// listens, --share/GRADIO_SHARE, analytics and telemetry; Landlock and its ABI; the
    /// integrity manifest and the model scan.
    ///
    /// Exit codes: 0 clean, 1 findings, 2 error.
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
    /// Attack the deployment as the service would: same account, same sandbox as `run`.
    ///
    /// On the weights: write, truncate, chmod, rename, delete one, replace the adapter
    /// directory, create a file in a read-only tier. On the system: write to /tmp, /var/tmp,
    /// /dev/shm, $HOME, the app and the logs; change the policy; read /etc/shadow; bind a port
    /// the policy does not allow, and 0.0.0.0. On privileges and limits: exec a setuid program,
    /// signal and ptrace warden, fork beyond sandbox.nproc, dump core. Controls: read every
    /// weight, write TMPDIR, bind its own address. Attacks are made harmless where possible (a
    /// weight is opened for writing but not written; what is renamed is put back).
    ///
    /// Exit codes: 0 every attack blocked and every control passed, 1 otherwise, 2 error.
    #[command(verbatim_doc_comment)]
    Probe(ProbeArgs),
    #[command(name = "__spawn-service", hide = true)]
    SpawnService,
    #[command(name = "__probe-service", hide = true)]
    ProbeService,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: ExportTarget,
}

#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// A hardened systemd unit (NAME.service).
    Systemd(ExportSystemdArgs),
    /// Kubernetes manifests (YAML, several documents).
    K8s(Box<ExportK8sArgs>),
}

/// Whether the exported unit allows writable executable memory (JIT compilers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JitArg {
    /// Deny, unless the policy has a GPU device preset.
    Auto,
    /// MemoryDenyWriteExecute=yes; the state directory is not executable.
    Deny,
    /// Allow (numba, torch.compile, triton, PyPy).
    Allow,
}

#[derive(Debug, Args)]
pub struct ExportSystemdArgs {
    /// The target's systemd version [default: the local `systemd --version`, else 252].
    #[arg(long, value_name = "N")]
    pub systemd_version: Option<u32>,
    /// Put the bare service command in ExecStart instead of `warden run` (no redaction,
    /// integrity checks, preflight refusals or Landlock).
    #[arg(long)]
    pub no_warden: bool,
    /// The warden binary on the target [default: this one].
    #[arg(long, value_name = "PATH", conflicts_with = "no_warden")]
    pub warden_bin: Option<PathBuf>,
    /// Writable executable memory for JIT compilers.
    #[arg(long, value_enum, default_value_t = JitArg::Auto)]
    pub jit: JitArg,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportK8sArgs {
    /// The image: warden on its PATH and the deployment at the same path as here
    /// [default: a placeholder that does not pull].
    #[arg(long, value_name = "NAME[:TAG]")]
    pub image: Option<String>,
    /// Pin the image by digest (sha256:HEX).
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// The namespace [default: the service's name].
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// The numeric user the container runs as (not 0).
    #[arg(long, value_name = "UID", default_value_t = crate::export::k8s::DEFAULT_UID)]
    pub uid: u32,
    /// The numeric group (and fsGroup) [default: the uid].
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,
    /// CPU request.
    #[arg(long, value_name = "QUANTITY", default_value = "1")]
    pub cpu: String,
    /// CPU limit.
    #[arg(long, value_name = "QUANTITY", default_value = "4")]
    pub cpu_limit: String,
    /// Memory request and limit.
    #[arg(long, value_name = "QUANTITY", default_value = "8Gi")]
    pub memory: String,
    /// GPUs to request when the policy has a device preset (0: none).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub gpus: u32,
    /// The device plugin's GPU resource [default: nvidia.com/gpu for the nvidia preset].
    #[arg(long, value_name = "NAME")]
    pub gpu_resource: Option<String>,
    /// Replicas (more than one adds a PodDisruptionBudget).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub replicas: u32,
    /// An existing PersistentVolumeClaim that holds the read-only tiers.
    #[arg(long, value_name = "NAME")]
    pub weights_claim: Option<String>,
    /// Size of the weights claim written otherwise [default: the tiers' size here plus 10%,
    /// else 100Gi].
    #[arg(long, value_name = "QUANTITY")]
    pub weights_size: Option<String>,
    /// Size of the memory-backed /dev/shm.
    #[arg(long, value_name = "QUANTITY", default_value = "1Gi")]
    pub shm_size: String,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// A table for people.
    Table,
    /// JSON for programs.
    Json,
    /// SARIF 2.1.0 for code-scanning tools.
    Sarif,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
    pub format: CheckFormat,
    /// Also check a systemd unit (from `warden export systemd`) against the policy.
    #[arg(long, value_name = "FILE")]
    pub unit: Vec<PathBuf>,
    /// Also check Kubernetes manifests (from `warden export k8s`) against the policy.
    #[arg(long, value_name = "FILE")]
    pub manifest: Vec<PathBuf>,
}

/// Output format of `probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeFormat {
    /// A table for people.
    Table,
    /// JSON for programs.
    Json,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ProbeFormat::Table)]
    pub format: ProbeFormat,
}

/// Output format for commands a machine may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people.
    Text,
    /// JSON for programs.
    Json,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The deployment directory [default: .]
    pub dir: Option<PathBuf>,
    /// Where to write the policy [default: DIR/warden.toml]; `-` prints it.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// The service account to propose [default: derived from the directory name].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct HardenArgs {
    /// Print the plan as a diff (path, owner:group mode before -> after) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Show every change, not only a summary per directory.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Write the service's output only to the log file, not also to stdout.
    #[arg(long)]
    pub no_echo: bool,
}

/// The digest of the integrity manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DigestArg {
    Sha256,
    Blake3,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The digest [default: integrity.digest of the policy].
    #[arg(long, value_enum)]
    pub digest: Option<DigestArg>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Compare size, mtime, ctime and inode only.
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Rehash every file.
    #[arg(long)]
    pub full: bool,
    /// Verify a Hugging Face cache directory's blobs against their names (no policy needed).
    #[arg(long, value_name = "DIR", conflicts_with = "quick")]
    pub hf_cache: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output format of `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    /// Text for people.
    Text,
    /// JSON for programs.
    Json,
    /// SARIF 2.1.0 for code-scanning tools.
    Sarif,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories to scan [default: the policy's sealed tiers].
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    pub format: ScanFormat,
    /// List clean files too (text format).
    #[arg(short, long)]
    pub verbose: bool,
    /// Archives nested deeper than this are not opened (a finding).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_depth: u32,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 0 only if the service runs and answers the policy's ready check now, else 1 (for
    /// container probes, which run inside the pod and reach a loopback listener).
    #[arg(long)]
    pub ready: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only the last N lines [default: all; 10 with --follow].
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    /// Keep printing new lines as they are written (across rotations).
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines written since a time ("2025-05-12 11:43:00", UTC) or for a duration ("10m").
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
}
