//! `warden verify`: compare the sealed tiers with the manifest.

use anyhow::Result;

use super::Outcome;
use crate::cli::{Format, VerifyArgs};
use crate::integrity::{self, Mode, Verified};
use crate::policy::Policy;
use crate::policy::schema::Verify;

pub fn run(policy: &Policy, args: &VerifyArgs) -> Result<Outcome> {
    let mode = if args.full {
        Mode::Full
    } else if args.quick {
        Mode::Quick
    } else {
        match policy.integrity.verify {
            Verify::Full => Mode::Full,
            Verify::Quick | Verify::Off => Mode::Quick,
        }
    };
    let v = integrity::verify(policy, mode, args.format == Format::Text)?;
    print(&v, args.format)
}

pub fn hf_cache(args: &VerifyArgs) -> Result<Outcome> {
    let v = integrity::hf::verify_cache(&args.hf_cache, args.format == Format::Text);
    print(&v, args.format)
}

fn print(v: &Verified, format: Format) -> Result<Outcome> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Format::Text => {
            for d in &v.differences {
                println!(
                    "{:<8} {}: {}",
                    format!("{:?}", d.kind).to_lowercase(),
                    crate::term::escape(&d.path),
                    crate::term::escape(&d.detail)
                );
            }
            let mode = match v.mode {
                Mode::Quick => "quick",
                Mode::Full => "full",
            };
            if v.is_clean() {
                println!(
                    "OK: {} file{} verified ({mode}{}) in {:.3}s",
                    v.files,
                    if v.files == 1 { "" } else { "s" },
                    if v.bytes_hashed > 0 {
                        format!(", {} hashed", super::seal::human(v.bytes_hashed))
                    } else {
                        String::new()
                    },
                    v.seconds
                );
            } else {
                println!(
                    "{} difference{} ({mode} verify of {} file{})",
                    v.differences.len(),
                    if v.differences.len() == 1 { "" } else { "s" },
                    v.files,
                    if v.files == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(if v.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
