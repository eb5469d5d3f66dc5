//! `warden run`: the supervisor in the foreground.

use anyhow::Result;

use super::Outcome;
use crate::cli::RunArgs;
use crate::policy::Policy;
use crate::supervise::{self, Options};

pub fn run(policy: &Policy, args: &RunArgs) -> Result<Outcome> {
    let code = supervise::run(
        policy,
        &Options {
            echo: !args.no_echo,
        },
        &[],
    )?;
    Ok(Outcome::Code(code))
}
