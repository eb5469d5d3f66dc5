//! `warden run`: the supervisor in the foreground.

use anyhow::Result;

use super::Outcome;
use crate::cli::RunArgs;
use crate::integrity::{Mode, VerifyCheck};
use crate::policy::Policy;
use crate::policy::schema::Verify;
use crate::scan::Limits;
use crate::scan::preflight::ScanCheck;
use crate::supervise::{self, Options, PreStart};

pub fn run(policy: &Policy, args: &RunArgs) -> Result<Outcome> {
    let verify = match policy.integrity.verify {
        Verify::Off => None,
        Verify::Quick => Some(VerifyCheck { mode: Mode::Quick }),
        Verify::Full => Some(VerifyCheck { mode: Mode::Full }),
    };
    let scan = policy.integrity.scan.then(|| ScanCheck {
        limits: Limits::default(),
    });
    let mut checks: Vec<&dyn PreStart> = Vec::new();
    if let Some(v) = &verify {
        checks.push(v);
    }
    if let Some(s) = &scan {
        checks.push(s);
    }
    let code = supervise::run(
        policy,
        &Options {
            echo: !args.no_echo,
        },
        &checks,
    )?;
    Ok(Outcome::Code(code))
}
