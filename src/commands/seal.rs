//! `warden seal`: write the integrity manifest of the sealed tiers.

use anyhow::Result;

use super::Outcome;
use crate::cli::{DigestArg, Format, SealArgs};
use crate::integrity::{self, Algo};
use crate::policy::Policy;

pub fn run(policy: &Policy, args: &SealArgs) -> Result<Outcome> {
    let algo = match args.digest {
        Some(DigestArg::Sha256) => Algo::Sha256,
        Some(DigestArg::Blake3) => Algo::Blake3,
        None => policy.integrity.digest.into(),
    };
    let s = integrity::seal(policy, algo, args.format == Format::Text)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        Format::Text => println!(
            "sealed {} file{} ({}) with {} in {:.2}s: {}",
            s.files,
            if s.files == 1 { "" } else { "s" },
            human(s.bytes),
            s.digest.name(),
            s.seconds,
            crate::term::path(&s.manifest)
        ),
    }
    Ok(Outcome::Clean)
}

/// Bytes in binary units.
pub fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
