//! Rendering the audits: a table for people, JSON for programs, SARIF 2.1.0 for code-scanning
//! tools. Untrusted strings (paths) are escaped before they reach a terminal.

use comfy_table::{ContentArrangement, Table};
use serde_json::{Value, json};

use super::check::{self, RULES, Severity};
use super::probe::{self, Kind};
use crate::term::escape;

fn table() -> Table {
    let mut t = Table::new();
    t.set_content_arrangement(ContentArrangement::Dynamic);
    if let Some((w, _)) = terminal_width() {
        t.set_width(w);
    } else {
        t.set_width(120);
    }
    t
}

fn terminal_width() -> Option<(u16, u16)> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .map(|w| (w, 0))
}

/// `check` as a table, then the checks that passed.
pub fn check_table(r: &check::Report) -> String {
    let mut out = String::new();
    if !r.findings.is_empty() {
        let mut t = table();
        t.set_header(vec!["severity", "id", "seen", "fix"]);
        for f in &r.findings {
            t.add_row(vec![
                f.severity.as_str().to_owned(),
                f.id.to_owned(),
                escape(&f.seen).into_owned(),
                escape(&f.fix).into_owned(),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    for p in &r.passed {
        out.push_str(&format!("ok  {:<18} {}\n", p.check, escape(&p.seen)));
    }
    let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    out.push_str(&if r.clean() {
        format!(
            "{}: clean ({} checks passed)\n",
            escape(&r.root.to_string_lossy()),
            r.passed.len()
        )
    } else {
        format!(
            "{}: {} finding{} ({} high, {} medium, {} low)\n",
            escape(&r.root.to_string_lossy()),
            r.findings.len(),
            if r.findings.len() == 1 { "" } else { "s" },
            count(Severity::High),
            count(Severity::Medium),
            count(Severity::Low)
        )
    });
    out
}

/// `check` as JSON.
pub fn check_json(r: &check::Report) -> Value {
    json!({
        "root": r.root,
        "policy": r.policy,
        "clean": r.clean(),
        "findings": r.findings,
        "passed": r.passed,
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::High => "8.0",
        Severity::Medium => "5.0",
        Severity::Low => "2.0",
    }
}

fn file_uri(p: &std::path::Path) -> String {
    let mut s = String::from("file://");
    for b in p.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// `check` as a SARIF 2.1.0 log: one rule per check, one result per finding.
pub fn check_sarif(r: &check::Report) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.id.replace(['.', '-'], "_"),
                "shortDescription": { "text": rule.title },
                "fullDescription": { "text": rule.title },
                "defaultConfiguration": { "level": level(rule.severity) },
                "properties": {
                    "security-severity": security_severity(rule.severity),
                    "tags": ["security"],
                },
            })
        })
        .collect();
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let path = f.path.clone().unwrap_or_else(|| r.policy.clone());
            let mut result = json!({
                "ruleId": f.id,
                "level": level(f.severity),
                "message": { "text": format!("{} Fix: {}", f.seen, f.fix) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": file_uri(&path) }
                    }
                }],
                "properties": { "severity": f.severity.as_str(), "fix": f.fix },
            });
            if let Some(i) = RULES.iter().position(|x| x.id == f.id) {
                result["ruleIndex"] = i.into();
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "warden",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "originalUriBaseIds": {
                "DEPLOYMENT": { "uri": file_uri(&r.root.join("")) }
            },
            "invocations": [{ "executionSuccessful": true }],
            "results": results,
        }]
    })
}

/// `probe` as a table.
pub fn probe_table(r: &probe::Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "probe of {} as {} (uid {})\n",
        escape(&r.name),
        escape(&r.user),
        r.uid
    ));
    match &r.sandbox {
        Some(s) => out.push_str(&format!("sandbox: {s}\n")),
        None => out.push_str("sandbox: none\n"),
    }
    let mut t = table();
    t.set_header(vec!["", "result", "what", "target", "detail"]);
    for o in &r.outcomes {
        let kind = match o.kind {
            Kind::Attack => "attack",
            Kind::Control => "control",
            Kind::Note => "note",
        };
        t.add_row(vec![
            kind.to_owned(),
            o.verdict.as_str().to_owned(),
            o.what.clone(),
            escape(&o.target).into_owned(),
            escape(&o.detail).into_owned(),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    let attacks = r.outcomes.iter().filter(|o| o.kind == Kind::Attack);
    let controls = r.outcomes.iter().filter(|o| o.kind == Kind::Control);
    let (a_all, a_bad) = (
        attacks.clone().count(),
        attacks.filter(|o| o.verdict.bad()).count(),
    );
    let (c_all, c_bad) = (
        controls.clone().count(),
        controls.filter(|o| o.verdict.bad()).count(),
    );
    out.push_str(&format!(
        "{} of {a_all} attacks blocked{}; {} of {c_all} controls passed\n",
        a_all - a_bad,
        if a_bad > 0 {
            format!(" ({a_bad} ALLOWED)")
        } else {
            String::new()
        },
        c_all - c_bad
    ));
    out
}

/// `probe` as JSON.
pub fn probe_json(r: &probe::Report) -> Value {
    json!({
        "name": r.name,
        "user": r.user,
        "uid": r.uid,
        "ok": r.failures() == 0,
        "sandbox": r.sandbox,
        "outcomes": r.outcomes,
    })
}
