//! `warden check` without privileges: output formats, exit codes, and SARIF that validates
//! against the SARIF 2.1.0 JSON schema (the copy shipped in the serde-sarif crate package).

use std::path::{Path, PathBuf};

use crate::common::Deployment;

/// A deployment with holes any user can make: a world-writable weight, --share, telemetry on,
/// no process limit, Landlock off.
fn holey() -> Deployment {
    let d = Deployment::empty();
    d.write("models/base/model.safetensors", b"weights")
        .write("app.py", b"print()\n")
        .write(
            "warden.toml",
            "[service]\nname = \"svc\"\ncommand = [\"python3\", \"app.py\", \"--share\"]\n\
             user = \"wdt-nobody-here\"\nenv = { GRADIO_ANALYTICS_ENABLED = \"True\" }\n\
             [[tier]]\npath = \"models\"\n[sandbox]\nlandlock = \"off\"\n",
        );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        d.path().join("models/base/model.safetensors"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    d
}

fn json(d: &Deployment, format: &str) -> (Option<i32>, serde_json::Value) {
    let out = d.warden(&["check", "--format", format]).output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

#[test]
fn findings_have_an_id_a_severity_what_was_seen_and_a_fix() {
    let d = holey();
    let (code, v) = json(&d, "json");
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["clean"], false);
    let found: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for id in [
        "tree.world-writable",
        "service.share",
        "telemetry.on",
        "sandbox.off",
        "sandbox.nproc",
        "account.missing",
    ] {
        assert!(found.contains(&id), "{id}: {v:#}");
    }
    for f in v["findings"].as_array().unwrap() {
        assert!(["high", "medium", "low"].contains(&f["severity"].as_str().unwrap()));
        assert!(!f["seen"].as_str().unwrap().is_empty(), "{f}");
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f}");
    }
    // Most severe first.
    let sev: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    let rank = |s: &str| ["low", "medium", "high"].iter().position(|x| *x == s);
    assert!(sev.windows(2).all(|w| rank(w[0]) >= rank(w[1])), "{sev:?}");
    let tel = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "telemetry.on")
        .unwrap();
    assert!(
        tel["seen"]
            .as_str()
            .unwrap()
            .contains("GRADIO_ANALYTICS_ENABLED=True"),
        "{tel}"
    );
}

#[test]
fn table_is_the_default_and_exit_codes_follow_the_convention() {
    let d = holey();
    let out = d.warden(&["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("severity") && text.contains("service.share") && text.contains("findings ("),
        "{text}"
    );
    // A broken policy is an error, not a finding.
    d.write("warden.toml", "[service]\nname = \"svc\"\n");
    let out = d.warden(&["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The SARIF 2.1.0 schema from the serde-sarif crate package (a dev-dependency, so cargo has
/// it unpacked in its registry).
fn sarif_schema() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let mut found = Vec::new();
    if let Ok(regs) = std::fs::read_dir(home.join("registry/src")) {
        for r in regs.flatten() {
            if let Ok(pkgs) = std::fs::read_dir(r.path()) {
                for p in pkgs.flatten() {
                    let schema = p.path().join("src/schema.json");
                    if p.file_name().to_string_lossy().starts_with("serde-sarif-")
                        && schema.is_file()
                    {
                        found.push(schema);
                    }
                }
            }
        }
    }
    if found.is_empty() {
        // Elsewhere (a vendored or relocated registry): ask cargo where the package is.
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--offline",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .output()
            .expect("cargo metadata");
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata");
        for p in meta["packages"].as_array().unwrap() {
            if p["name"] == "serde-sarif" {
                let m = PathBuf::from(p["manifest_path"].as_str().unwrap());
                found.push(m.with_file_name("src").join("schema.json"));
            }
        }
    }
    found.sort();
    found
        .pop()
        .expect("the serde-sarif package (a dev-dependency) with its src/schema.json")
}

#[test]
fn sarif_validates_against_the_2_1_0_schema() {
    // The published schema has one `pattern` (run.language) with an unescaped `]` that an
    // ECMA-262 regex engine refuses while checking the schema itself; escape it (warden never
    // sets run.language).
    let text = std::fs::read_to_string(sarif_schema())
        .unwrap()
        .replace("-[a-zA-Z]{2}]?$", "-[a-zA-Z]{2}\\\\]?$");
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        schema["title"]
            .as_str()
            .unwrap()
            .contains("SARIF) Version 2.1.0"),
        "{}",
        schema["title"]
    );
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles");
    for d in [holey(), clean_enough()] {
        let (code, v) = json(&d, "sarif");
        assert!(matches!(code, Some(0 | 1)), "{v:#}");
        let errors: Vec<String> = validator
            .iter_errors(&v)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{v:#}");
        // And it reads back through a typed SARIF model.
        let typed: serde_sarif::sarif::Sarif = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(typed.runs.len(), 1);
        let run = &v["runs"][0];
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(run["tool"]["driver"]["name"], "warden");
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        for r in run["results"].as_array().unwrap() {
            let i = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[i]["id"], r["ruleId"], "{r}");
            assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
            assert!(
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .starts_with("file:///")
            );
        }
    }
    // A finding of the holey deployment is a result with its rule.
    let (_, v) = json(&holey(), "sarif");
    // (The validator does refuse what the schema does not allow.)
    let mut bad = v.clone();
    bad["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&bad));
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "service.share" && r["level"] == "error"),
        "{v:#}"
    );
}

/// Few holes (no account may exist): still valid SARIF, with fewer results.
fn clean_enough() -> Deployment {
    let d = Deployment::empty();
    d.write("models/base/model.safetensors", b"weights").write(
        "warden.toml",
        "[service]\nname = \"svc\"\ncommand = [\"python3\", \"app.py\"]\nuser = \"wdt-x\"\n\
         [[tier]]\npath = \"models\"\n[sandbox]\nnproc = 64\n",
    );
    d
}
