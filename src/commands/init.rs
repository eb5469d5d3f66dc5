//! `warden init`: propose a warden.toml for a deployment directory.

use anyhow::{Result, bail};

use super::Outcome;
use crate::cli::InitArgs;

pub fn run(_args: &InitArgs) -> Result<Outcome> {
    bail!("init is not built yet")
}
