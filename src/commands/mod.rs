//! One thin file per subcommand: load the policy, call the library, print the result.

mod check;
mod export;
mod harden;
mod init;
mod logs;
mod probe;
mod run;
mod scan;
mod seal;
mod status;
mod updown;
mod validate;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::policy::{self, Policy};

/// What a command found, mapped to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, nothing to report: exit 0.
    Clean,
    /// Done, with findings or parts not applied: exit 1.
    Findings,
    /// A specific exit code (`run` passes the service's on; `status` uses 3 for stopped).
    Code(u8),
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Findings => ExitCode::from(1),
            Outcome::Code(c) => ExitCode::from(c),
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    let policy_path = cli
        .policy
        .unwrap_or_else(|| PathBuf::from(policy::DEFAULT_FILE));
    match cli.command {
        Command::Validate(args) => validate::run(&policy_path, &args),
        Command::Init(args) => init::run(&args),
        Command::Harden(args) => harden::run(&load(&policy_path)?, &args),
        Command::Run(args) => run::run(&load(&policy_path)?, &args),
        Command::Up => updown::up(&load(&policy_path)?),
        Command::Stop => updown::stop(&load(&policy_path)?),
        Command::Restart => updown::restart(&load(&policy_path)?),
        Command::Status(args) => status::run(&load(&policy_path)?, &args),
        Command::Logs(args) => logs::run(&load(&policy_path)?, &args),
        Command::Seal(args) => seal::run(&load(&policy_path)?, &args),
        Command::Verify(args) if !args.hf_cache.is_empty() => verify::hf_cache(&args),
        Command::Verify(args) => verify::run(&load(&policy_path)?, &args),
        Command::Scan(args) if !args.paths.is_empty() => scan::paths(&args),
        Command::Scan(args) => scan::sealed(&load(&policy_path)?, &args),
        Command::Export(args) => export::run(&load(&policy_path)?, &args),
        Command::Check(args) => check::run(&load(&policy_path)?, &args),
        Command::Probe(args) => probe::run(&load(&policy_path)?, &args),
        Command::SpawnService => crate::supervise::spawn_helper(),
        Command::ProbeService => {
            crate::supervise::spawn::helper_main(Some(crate::audit::probe::attacks_main))
        }
    }
}

/// Loads the policy and prints its warnings.
fn load(path: &std::path::Path) -> Result<Policy> {
    let policy = Policy::load(path)?;
    for w in &policy.warnings {
        eprintln!("warden: warning: {w}");
    }
    Ok(policy)
}
