//! Scan reports for people (text), programs (JSON) and code-scanning tools (SARIF 2.1.0).

use std::fmt::Write as _;

use serde_json::json;

use super::{Report, Severity};
use crate::term;

/// One line per finding, then a summary. Clean files are listed with `verbose`.
pub fn text(r: &Report, verbose: bool) -> String {
    let mut s = String::new();
    for f in &r.files {
        let path = term::path(&f.path);
        if let Some(e) = &f.error {
            let _ = writeln!(s, "{path}: error: {}", term::escape(e));
        }
        if f.findings.is_empty() {
            if verbose && f.error.is_none() {
                let _ = writeln!(s, "{path}: {}: clean", f.format.as_deref().unwrap_or("?"));
            }
            continue;
        }
        for x in &f.findings {
            let mut place = path.clone();
            if let Some(m) = &x.member {
                let _ = write!(place, " [{}]", term::escape(m));
            }
            if let Some(o) = x.offset {
                let _ = write!(place, " @{o}");
            }
            let _ = writeln!(
                s,
                "{place}: {} {}: {}",
                x.severity.as_str().to_uppercase(),
                x.rule,
                term::escape(&x.message)
            );
        }
    }
    let _ = writeln!(
        s,
        "{} file{} scanned: {} finding{} ({} critical, {} high, {} medium, {} low), {} error{}",
        r.files.len(),
        plural(r.files.len()),
        r.findings(),
        plural(r.findings()),
        r.count(Severity::Critical),
        r.count(Severity::High),
        r.count(Severity::Medium),
        r.count(Severity::Low),
        r.errors(),
        plural(r.errors()),
    );
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The report as JSON: every file with its format and findings, and a summary.
pub fn json(r: &Report) -> String {
    let v = json!({
        "files": r.files,
        "summary": {
            "files": r.files.len(),
            "findings": r.findings(),
            "critical": r.count(Severity::Critical),
            "high": r.count(Severity::High),
            "medium": r.count(Severity::Medium),
            "low": r.count(Severity::Low),
            "errors": r.errors(),
            "exit": r.exit_code(),
        }
    });
    serde_json::to_string_pretty(&v).expect("serializable")
}

/// SARIF 2.1.0, one result per finding.
pub fn sarif(r: &Report) -> String {
    let mut rules: Vec<&'static str> = r
        .files
        .iter()
        .flat_map(|f| f.findings.iter().map(|x| x.rule))
        .collect();
    rules.sort_unstable();
    rules.dedup();
    let level = |s: Severity| match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    };
    let mut results = Vec::new();
    for f in &r.files {
        let uri = f.path.to_string_lossy();
        for x in &f.findings {
            let mut msg = x.message.clone();
            if let Some(m) = &x.member {
                msg = format!("{msg} (member {m})");
            }
            let mut loc = json!({ "physicalLocation": { "artifactLocation": { "uri": uri } } });
            if let (Some(o), None) = (x.offset, &x.member) {
                loc["physicalLocation"]["region"] = json!({ "byteOffset": o });
            }
            let mut props = json!({ "severity": x.severity.as_str() });
            if let Some(g) = &x.global {
                props["global"] = json!(g);
            }
            if let Some(m) = &x.member {
                props["member"] = json!(m);
            }
            if let Some(o) = x.offset {
                props["offset"] = json!(o);
            }
            results.push(json!({
                "ruleId": x.rule,
                "ruleIndex": rules.iter().position(|r| *r == x.rule),
                "level": level(x.severity),
                "message": { "text": msg },
                "locations": [loc],
                "properties": props,
            }));
        }
        if let Some(e) = &f.error {
            results.push(json!({
                "ruleId": "io/unreadable",
                "level": "error",
                "kind": "fail",
                "message": { "text": e },
                "locations": [{ "physicalLocation": { "artifactLocation": { "uri": uri } } }],
            }));
        }
    }
    let v = json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "warden",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|id| json!({ "id": id, "shortDescription": { "text": id } })).collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    });
    serde_json::to_string_pretty(&v).expect("serializable")
}
