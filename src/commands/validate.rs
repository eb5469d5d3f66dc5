//! `warden validate`: print OK or every error in the policy.

use std::path::Path;

use anyhow::Result;

use super::Outcome;
use crate::cli::{Format, ValidateArgs};
use crate::policy::{Policy, PolicyError};

pub fn run(path: &Path, args: &ValidateArgs) -> Result<Outcome> {
    let result = Policy::load(path);
    if let Err(PolicyError::Read { .. }) = result {
        return Err(result.unwrap_err().into());
    }
    let (errors, warnings) = match &result {
        Ok(p) => (Vec::new(), p.warnings.clone()),
        Err(e) => (e.diagnostics().to_vec(), Vec::new()),
    };
    match args.format {
        Format::Json => {
            let item = |d: &crate::policy::Diagnostic| {
                serde_json::json!({
                    "file": d.file, "line": d.line, "column": d.column,
                    "key": d.key, "message": d.message,
                })
            };
            let doc = serde_json::json!({
                "ok": errors.is_empty(),
                "errors": errors.iter().map(item).collect::<Vec<_>>(),
                "warnings": warnings.iter().map(item).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            for e in &errors {
                eprintln!("error: {e}");
            }
            if let Ok(p) = &result {
                println!(
                    "OK: {} ({} tier{}, runs as {}:{})",
                    crate::term::path(&p.file),
                    p.tiers.len(),
                    if p.tiers.len() == 1 { "" } else { "s" },
                    p.service.user,
                    p.group
                );
            }
        }
    }
    Ok(if errors.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
