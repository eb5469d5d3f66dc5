use predicates::prelude::*;

use crate::common::Deployment;

const POLICY: &str = r#"[service]
name = "svc"
command = ["python3", "app.py"]
user = "aiuser"

[[tier]]
path = "models"
"#;

#[test]
fn valid_policy_prints_ok() {
    let d = Deployment::empty();
    d.write("models/a.safetensors", b"x")
        .write("warden.toml", POLICY);
    d.warden(&["validate"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("OK: "));
}

#[test]
fn malformed_policy_gives_file_line_column() {
    let d = Deployment::empty();
    d.write("models/a.safetensors", b"x").write(
        "warden.toml",
        POLICY.replace(
            "user = \"aiuser\"",
            "user = \"aiuser\"\nlisten = [\"nowhere\"]",
        ),
    );
    let out = d
        .warden(&["validate"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(
        err.contains("warden.toml:5:11: invalid socket address"),
        "{err}"
    );
}

#[test]
fn other_commands_refuse_an_invalid_policy_with_exit_2() {
    let d = Deployment::empty();
    d.write("warden.toml", "[service]\nname = 1\n");
    d.warden(&["harden", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("warden.toml:2:8"));
}

#[test]
fn missing_policy_names_the_path() {
    let d = Deployment::empty();
    d.warden(&["validate"]).assert().code(2).stderr(
        predicate::str::contains("cannot read policy file")
            .and(predicate::str::contains("warden.toml")),
    );
}

#[test]
fn validate_json_lists_errors() {
    let d = Deployment::empty();
    d.write("warden.toml", POLICY);
    let out = d
        .warden(&["validate", "--format", "json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["key"], "tier[0].path");
    assert_eq!(v["errors"][0]["line"], 7);
}
