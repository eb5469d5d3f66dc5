//! `warden probe`: real attacks as the service, in the service's sandbox.

use anyhow::Result;

use super::Outcome;
use crate::audit::{probe, render};
use crate::cli::{ProbeArgs, ProbeFormat};
use crate::policy::Policy;

pub fn run(policy: &Policy, args: &ProbeArgs) -> Result<Outcome> {
    let report = probe::run(policy)?;
    match args.format {
        ProbeFormat::Table => print!("{}", render::probe_table(&report)),
        ProbeFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render::probe_json(&report))?
        ),
    }
    Ok(if report.failures() == 0 {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
