//! `run`'s scan of the sealed tiers. Verdicts are cached by content digest from the manifest,
//! so an unchanged (verified) tree is not scanned again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{FileReport, Limits, RULES_VERSION, Report, Severity, scan_file};
use crate::integrity::{self, Manifest, manifest};
use crate::policy::Policy;
use crate::policy::schema::Verify;

const CACHE_FILE: &str = "scan-cache.json";

/// Digests of files found clean, for one version of the rules.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cache {
    rules: u32,
    clean: BTreeSet<String>,
}

fn cache_path(state_dir: &Path) -> PathBuf {
    state_dir.join(manifest::DIR).join(CACHE_FILE)
}

fn load_cache(state_dir: &Path) -> Cache {
    let p = cache_path(state_dir);
    let Ok(meta) = std::fs::symlink_metadata(&p) else {
        return Cache::default();
    };
    if !meta.is_file() || manifest::trusted(&p, &meta).is_err() {
        return Cache::default();
    }
    std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
        .filter(|c| c.rules == RULES_VERSION)
        .unwrap_or_default()
}

/// The result of scanning the sealed tiers.
#[derive(Debug, Default)]
pub struct SealedScan {
    pub report: Report,
    /// Files skipped because their sealed digest was already found clean.
    pub cached: usize,
}

impl SealedScan {
    /// Findings that stop a start: everything but low-severity anomalies, and errors.
    pub fn blocking(&self) -> Vec<(&FileReport, Option<&super::Finding>)> {
        let mut v = Vec::new();
        for f in &self.report.files {
            if f.error.is_some() {
                v.push((f, None));
            }
            for x in &f.findings {
                if x.severity > Severity::Low {
                    v.push((f, Some(x)));
                }
            }
        }
        v
    }
}

/// Scans the sealed tiers. With `use_cache` and a verified manifest (the policy verifies before
/// start), files whose sealed digest is known clean are skipped.
pub fn scan_sealed(policy: &Policy, limits: &Limits, use_cache: bool) -> SealedScan {
    let manifest = (use_cache && policy.integrity.verify != Verify::Off)
        .then(|| Manifest::load(&policy.state_dir).ok())
        .flatten();
    let mut cache = if manifest.is_some() {
        load_cache(&policy.state_dir)
    } else {
        Cache::default()
    };
    cache.rules = RULES_VERSION;
    let files: Vec<(String, Option<String>)> = match &manifest {
        Some(m) => m
            .files
            .iter()
            .map(|e| {
                (
                    e.path.clone(),
                    Some(format!("{}:{}", m.digest.name(), e.digest)),
                )
            })
            .collect(),
        None => integrity::sealed_files(policy)
            .0
            .into_iter()
            .map(|p| (p, None))
            .collect(),
    };
    let todo: Vec<&(String, Option<String>)> = files
        .iter()
        .filter(|(_, d)| d.as_ref().is_none_or(|d| !cache.clean.contains(d)))
        .collect();
    let cached = files.len() - todo.len();
    let reports: Vec<(FileReport, Option<String>)> = todo
        .par_iter()
        .map(|(rel, d)| (scan_file(&policy.root.join(rel), limits), d.clone()))
        .collect();
    let mut changed = false;
    for (r, d) in &reports {
        if let Some(d) = d
            && r.is_clean()
        {
            changed |= cache.clean.insert(d.clone());
        }
    }
    if changed && let Some(m) = &manifest {
        // Drop digests no longer sealed, then save; a cache that cannot be written only costs
        // a rescan next time.
        let live: BTreeSet<String> = m
            .files
            .iter()
            .map(|e| format!("{}:{}", m.digest.name(), e.digest))
            .collect();
        cache.clean.retain(|d| live.contains(d));
        if let Ok(dir) = manifest::ensure_dir(&policy.state_dir) {
            let mut text = serde_json::to_vec(&cache).expect("serializable");
            text.push(b'\n');
            if let Err(e) = manifest::write_atomic(&dir.join(CACHE_FILE), &text) {
                eprintln!("warden: warning: cannot save the scan cache: {e}");
            }
        }
    }
    SealedScan {
        report: Report {
            files: reports.into_iter().map(|(r, _)| r).collect(),
        },
        cached,
    }
}

/// `run`'s check: refuse to start when a sealed file is dangerous or cannot be checked.
pub struct ScanCheck {
    pub limits: Limits,
}

impl crate::supervise::PreStart for ScanCheck {
    fn name(&self) -> &str {
        "model scan"
    }

    fn check(&self, policy: &Policy) -> Result<(), String> {
        let s = scan_sealed(policy, &self.limits, true);
        for f in &s.report.files {
            for x in f.findings.iter().filter(|x| x.severity == Severity::Low) {
                eprintln!(
                    "warden: model scan: note: {}: {} {}",
                    crate::term::path(&f.path),
                    x.rule,
                    crate::term::escape(&x.message)
                );
            }
        }
        let blocking = s.blocking();
        if blocking.is_empty() {
            eprintln!(
                "warden: model scan: {} file{} scanned, {} unchanged since a clean scan",
                s.report.files.len(),
                if s.report.files.len() == 1 { "" } else { "s" },
                s.cached
            );
            return Ok(());
        }
        let mut msg = format!(
            "{} dangerous or uncheckable item{}:",
            blocking.len(),
            if blocking.len() == 1 { "" } else { "s" }
        );
        for (f, x) in blocking.iter().take(20) {
            let p = crate::term::path(f.path.strip_prefix(&policy.root).unwrap_or(&f.path));
            match x {
                Some(x) => {
                    let m = x
                        .member
                        .as_deref()
                        .map(|m| format!(" [{}]", crate::term::escape(m)))
                        .unwrap_or_default();
                    msg.push_str(&format!(
                        "\n    {p}{m}: {} {}: {}",
                        x.severity,
                        x.rule,
                        crate::term::escape(&x.message)
                    ));
                }
                None => msg.push_str(&format!(
                    "\n    {p}: {}",
                    f.error.as_deref().unwrap_or("error")
                )),
            }
        }
        if blocking.len() > 20 {
            msg.push_str(&format!(
                "\n    ... and {} more (`warden scan` lists them)",
                blocking.len() - 20
            ));
        }
        Err(msg)
    }
}
