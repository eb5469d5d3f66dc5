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
    #[command(name = "__spawn-service", hide = true)]
    SpawnService,
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

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}
