//! `warden check`: the production-readiness audit.

use anyhow::Result;

use super::Outcome;
use crate::audit::check::{self, Extra};
use crate::audit::render;
use crate::cli::{CheckArgs, CheckFormat};
use crate::integrity::{Mode, VerifyCheck};
use crate::policy::Policy;
use crate::scan::Limits;
use crate::scan::preflight::ScanCheck;

pub fn run(policy: &Policy, args: &CheckArgs) -> Result<Outcome> {
    // The integrity manifest and the model scan, as `run` checks them before a start.
    let verify = VerifyCheck { mode: Mode::Quick };
    let scan = ScanCheck {
        limits: Limits::default(),
    };
    let mut extra = Vec::new();
    if policy.integrity.verify != crate::policy::schema::Verify::Off {
        extra.push(Extra {
            id: "integrity.manifest",
            check: &verify,
            fix: "run `warden seal` after a deliberate change; otherwise restore the weights and find out who changed them",
        });
    }
    if policy.integrity.scan {
        extra.push(Extra {
            id: "scan.findings",
            check: &scan,
            fix: "run `warden scan` for the details; replace the file with a safetensors copy",
        });
    }
    // Exports given on the command line: what they write must still be there.
    use crate::export::check::{FileCheck, Kind};
    let units = args.unit.iter().map(|p| FileCheck::new(Kind::Unit, p));
    let manifests = args
        .manifest
        .iter()
        .map(|p| FileCheck::new(Kind::Manifest, p));
    let files: Vec<FileCheck> = units.chain(manifests).collect();
    for f in &files {
        extra.push(Extra {
            id: match f.kind {
                Kind::Unit => "export.unit",
                Kind::Manifest => "export.manifest",
            },
            check: f,
            fix: "export again (`warden export systemd` / `warden export k8s`) or restore what the edit removed",
        });
    }
    let report = check::run(policy, &extra);
    match args.format {
        CheckFormat::Table => print!("{}", render::check_table(&report)),
        CheckFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&render::check_json(&report))?
        ),
        CheckFormat::Sarif => println!(
            "{}",
            serde_json::to_string_pretty(&render::check_sarif(&report))?
        ),
    }
    Ok(if report.clean() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
