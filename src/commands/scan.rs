//! `warden scan`: look for code hidden in model files.

use anyhow::Result;

use super::Outcome;
use crate::cli::{ScanArgs, ScanFormat};
use crate::policy::Policy;
use crate::scan::{self, Limits, Report, render};

fn limits(args: &ScanArgs) -> Limits {
    Limits {
        max_depth: args.max_depth,
        ..Limits::default()
    }
}

pub fn paths(args: &ScanArgs) -> Result<Outcome> {
    let r = scan::scan_paths(&args.paths, &limits(args));
    print(&r, args)
}

/// The policy's sealed tiers, every file scanned (no cache).
pub fn sealed(policy: &Policy, args: &ScanArgs) -> Result<Outcome> {
    let (files, problems) = crate::integrity::sealed_files(policy);
    if files.is_empty() && problems.is_empty() && !policy.tiers.iter().any(|t| t.seal) {
        anyhow::bail!("the policy seals no tier: give PATHs to scan");
    }
    let paths: Vec<_> = files.iter().map(|f| policy.root.join(f)).collect();
    let mut r = scan::scan_paths(&paths, &limits(args));
    for (p, why) in problems {
        r.files.push(scan::FileReport {
            path: policy.root.join(&p),
            format: None,
            size: 0,
            findings: vec![scan::Finding::new(
                scan::Severity::Medium,
                "walk/not-scanned",
                why,
            )],
            error: None,
        });
    }
    print(&r, args)
}

fn print(r: &Report, args: &ScanArgs) -> Result<Outcome> {
    let out = match args.format {
        ScanFormat::Text => render::text(r, args.verbose),
        ScanFormat::Json => render::json(r),
        ScanFormat::Sarif => render::sarif(r),
    };
    print!("{out}");
    if args.format != ScanFormat::Text {
        println!();
    }
    Ok(match r.exit_code() {
        0 => Outcome::Clean,
        1 => Outcome::Findings,
        c => Outcome::Code(c),
    })
}
