//! `warden harden`: create the account and apply the policy's ownership and modes.

use anyhow::{Result, bail};

use super::Outcome;
use crate::cli::HardenArgs;
use crate::policy::Policy;

pub fn run(_policy: &Policy, _args: &HardenArgs) -> Result<Outcome> {
    bail!("harden is not built yet")
}
