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
