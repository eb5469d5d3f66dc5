//! `warden scan` on the generated corpus: every malicious sample flagged (with the rule its
//! technique calls for), every benign one clean; output formats and exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Deployment, warden};

/// The Python that runs the corpus generator: it needs numpy.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_TEST_PYTHON") {
        return p.into();
    }
    let venv = Path::new("/opt/warden-ci/venv/bin/python");
    if venv.exists() {
        return venv.to_owned();
    }
    "python3".into()
}

/// Generates the corpus into a temporary directory.
pub fn corpus() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("warden-corpus-")
        .tempdir()
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/gen.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run the corpus generator");
    assert!(
        out.status.success(),
        "the corpus generator failed (it needs numpy; set WARDEN_TEST_PYTHON): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn scan_json(paths: &[&Path]) -> (serde_json::Value, i32) {
    let out = warden()
        .arg("scan")
        .arg("--format")
        .arg("json")
        .args(paths)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.code().unwrap())
}

#[test]
fn corpus_malicious_flagged_benign_clean() {
    let dir = corpus();
    let root = dir.path();
    let expect: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(root.join("expect.json")).unwrap()).unwrap();
    let (rep, code) = scan_json(&[root]);
    assert_eq!(code, 1);
    let files = rep["files"].as_array().unwrap();
    let mut failures = Vec::new();
    let (mut benign, mut malicious) = (0, 0);
    for e in &expect {
        let rel = e["file"].as_str().unwrap();
        let path = root.join(rel);
        let Some(f) = files
            .iter()
            .find(|f| Path::new(f["path"].as_str().unwrap()) == path)
        else {
            failures.push(format!("{rel}: not in the report"));
            continue;
        };
        let rules: Vec<&str> = f["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["rule"].as_str().unwrap())
            .collect();
        match e["verdict"].as_str().unwrap() {
            "benign" => {
                benign += 1;
                if !rules.is_empty() || f.get("error").is_some() {
                    failures.push(format!("{rel}: benign but flagged: {}", f["findings"]));
                }
            }
            _ => {
                malicious += 1;
                if rules.is_empty() {
                    failures.push(format!("{rel}: malicious ({}) but clean", e["technique"]));
                } else if let Some(r) = e["rule"].as_str()
                    && !rules.contains(&r)
                {
                    failures.push(format!("{rel}: expected rule {r}, got {rules:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        benign >= 20 && malicious >= 100,
        "{benign} benign, {malicious} malicious"
    );
}

#[test]
fn exit_codes_and_formats() {
    let dir = corpus();
    let benign = dir.path().join("benign");
    warden().arg("scan").arg(&benign).assert().code(0);
    let evil = dir.path().join("malicious/gadget-os.system.pkl");
    let out = warden().arg("scan").arg(&evil).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CRITICAL pickle/global") && text.contains("os.system"),
        "{text}"
    );
    // Missing file only: error (2). Missing file and a malicious one: the finding wins (1).
    let missing = dir.path().join("nope.bin");
    warden().arg("scan").arg(&missing).assert().code(2);
    warden()
        .arg("scan")
        .arg(&missing)
        .arg(&evil)
        .assert()
        .code(1);
    let out = warden()
        .args(["scan", "--format", "sarif"])
        .arg(&evil)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(
        v["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["level"] == "error")
    );
}

#[test]
fn directory_scan_decides_by_content() {
    let d = Deployment::empty();
    d.write("models/notes.txt", b"cos\nsystem\n(S'id'\ntR.");
    d.write("models/config.json", br#"{"a": 1}"#);
    let (rep, code) = scan_json(&[&d.path().join("models")]);
    assert_eq!(code, 1);
    let s = rep.to_string();
    assert!(s.contains("os.system"), "{s}");
}

#[test]
fn sealed_tiers_are_scanned_from_the_policy() {
    let d = Deployment::empty();
    d.write(
        "warden.toml",
        "[service]\nname = \"t\"\ncommand = [\"true\"]\nuser = \"nobody\"\n\n[[tier]]\npath = \"models\"\n",
    );
    d.write("models/ok.safetensors", safetensors_bytes());
    d.warden(&["scan"]).assert().code(0);
    d.write(
        "models/adapter_model.bin",
        b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.",
    );
    d.warden(&["scan"]).assert().code(1);
}

pub fn safetensors_bytes() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&[0u8; 16]);
    v
}
