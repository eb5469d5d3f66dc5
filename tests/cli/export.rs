//! `warden export`: the unit for examples/image-edit checked by `systemd-analyze verify` and
//! `systemd-analyze security --offline=true`, the manifests by `kubernetes-validate` (strict)
//! and `checkov`. The Python tools come from the "python environment" step of .ci/run; a test
//! fails, never skips, when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Deployment, set_mode};

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.37.0";

/// Where .ci/run installs checkov and kubernetes-validate.
const EXPORT_VENV: &str = "/opt/warden-ci/export-venv";

const DIGEST: &str = "sha256:4f2bd2c4e4a4a2b0a7f1f6b0c9d5b5a7e3c1d9e8f7a6b5c4d3e2f1a0b9c8d7e6";

/// examples/image-edit, with a stand-in app binary (systemd-analyze verify wants ExecStart's
/// program to exist).
fn example() -> Deployment {
    let d = Deployment::example("image-edit");
    d.write("bin/image-edit-demo", "#!/bin/sh\nexit 0\n");
    set_mode(&d.path().join("bin/image-edit-demo"), 0o755);
    d
}

/// Edits the example's policy.
fn edit_policy(d: &Deployment, from: &str, to: &str) {
    let text = std::fs::read_to_string(d.policy()).unwrap();
    assert!(text.contains(from), "{from:?} not in the example policy");
    std::fs::write(d.policy(), text.replacen(from, to, 1)).unwrap();
}

fn gpu(d: &Deployment) {
    edit_policy(d, "# devices = [\"nvidia\"]", "devices = [\"nvidia\"]");
    edit_policy(
        d,
        "# groups = [\"video\", \"render\"]",
        "groups = [\"video\"]",
    );
}

fn public(d: &Deployment) {
    edit_policy(
        d,
        "\"--server-name\", \"127.0.0.1\"",
        "\"--server-name\", \"0.0.0.0\"",
    );
    edit_policy(
        d,
        "listen  = [\"127.0.0.1:7860\"]",
        "listen  = [\"0.0.0.0:7860\"]",
    );
}

fn need(tool: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("{tool} is not installed: {install}"))
}

/// A tool from the export venv (WARDEN_EXPORT_VENV overrides its place).
fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("WARDEN_EXPORT_VENV")
        .map_or_else(|| PathBuf::from(EXPORT_VENV), PathBuf::from);
    let p = venv.join("bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: the step \"python environment for the end-to-end tests\" of .ci/run \
         installs checkov and kubernetes-validate into {} (run `bash .ci/run`, or that step's \
         pip command by hand)",
        p.display(),
        venv.display()
    );
    p
}

/// Runs `warden export ARGS -o FILE` and returns (FILE, stderr).
fn export(d: &Deployment, file: &str, args: &[&str]) -> (PathBuf, String) {
    let out_path = d.path().join(file);
    let mut full: Vec<&str> = vec!["export"];
    full.extend_from_slice(args);
    let out_str = out_path.to_string_lossy().into_owned();
    full.extend_from_slice(&["-o", &out_str]);
    let out = d.warden(&full).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "warden {full:?} failed:\n{err}");
    (out_path, err)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `systemd-analyze verify`: success and not a word about the unit.
fn verify_unit(unit: &Path) {
    let analyze = need(
        "systemd-analyze",
        "the tools step of .ci/run installs it (apt-get install systemd)",
    );
    let (ok, out) = run(Command::new(&analyze).arg("verify").arg(unit));
    let name = unit.file_name().unwrap().to_string_lossy();
    let about: Vec<&str> = out.lines().filter(|l| l.contains(&*name)).collect();
    assert!(
        ok && about.is_empty(),
        "systemd-analyze verify {}:\n{out}\n--- unit ---\n{}",
        unit.display(),
        std::fs::read_to_string(unit).unwrap()
    );
}

/// `systemd-analyze security --offline=true`: the overall exposure.
fn exposure(unit: &Path) -> f64 {
    let analyze = need(
        "systemd-analyze",
        "the tools step of .ci/run installs it (apt-get install systemd)",
    );
    let (_, out) = run(Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure in:\n{out}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure in {line:?}"));
    eprintln!("{}: exposure {score}", unit.display());
    score
}

fn unit_value<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_unit_for_the_example_verifies_and_exposes_at_most_1_3() {
    let d = example();
    let (unit, err) = export(&d, "image-edit.service", &["systemd"]);
    verify_unit(&unit);
    let score = exposure(&unit);
    assert!(score <= 1.3, "exposure {score} > 1.3");
    let text = std::fs::read_to_string(&unit).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"))
        .canonicalize()
        .unwrap();
    let policy = d.policy().canonicalize().unwrap();
    assert_eq!(
        unit_value(&text, "ExecStart"),
        [format!(
            "{} -c {} run --no-echo",
            bin.display(),
            policy.display()
        )]
    );
    assert_eq!(unit_value(&text, "User"), ["aiuser"]);
    // The test deployment is under /tmp, which PrivateTmp hides: the operator is told.
    assert!(err.contains("PrivateTmp"), "{err}");
}

#[test]
fn systemd_unit_without_warden_verifies_and_exposes_at_most_1_3() {
    let d = example();
    let (unit, _) = export(&d, "image-edit.service", &["systemd", "--no-warden"]);
    verify_unit(&unit);
    assert!(exposure(&unit) <= 1.3);
    let text = std::fs::read_to_string(&unit).unwrap();
    let root = d.path().canonicalize().unwrap();
    assert_eq!(
        unit_value(&text, "ExecStart"),
        [format!(
            "{}/bin/image-edit-demo --server-name 127.0.0.1 --server-port 7860",
            root.display()
        )]
    );
    assert!(unit_value(&text, "Environment").contains(&"HF_HUB_OFFLINE=1"));
}

#[test]
fn systemd_unit_for_a_gpu_verifies_and_exposes_at_most_1_5() {
    let d = example();
    gpu(&d);
    let (unit, _) = export(&d, "image-edit.service", &["systemd"]);
    verify_unit(&unit);
    let score = exposure(&unit);
    assert!(score <= 1.5, "exposure {score} > 1.5");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert_eq!(unit_value(&text, "PrivateDevices"), ["no"]);
    assert_eq!(unit_value(&text, "DevicePolicy"), ["closed"]);
    assert!(unit_value(&text, "DeviceAllow").contains(&"char-nvidia-uvm rw"));
}

#[test]
fn systemd_unit_for_an_older_systemd_still_verifies() {
    let d = example();
    let (unit, err) = export(
        &d,
        "image-edit.service",
        &["systemd", "--systemd-version", "240"],
    );
    verify_unit(&unit);
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(unit_value(&text, "ProtectClock").is_empty());
    assert!(
        text.contains("#ProtectClock=yes  (needs systemd 245)"),
        "{text}"
    );
    assert!(err.contains("ProtectClock= needs systemd 245"), "{err}");
}

fn kubernetes_validate(file: &Path) {
    let tool = venv_tool("kubernetes-validate");
    let (ok, out) = run(Command::new(&tool)
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .arg(file));
    let passed = out.lines().filter(|l| l.contains(" passed ")).count();
    assert!(
        ok && !out.contains("ERROR") && !out.contains("failed") && passed >= 6,
        "kubernetes-validate {}:\n{out}",
        file.display()
    );
}

/// checkov's summary and the ids of the failed checks.
fn checkov(file: &Path) -> (serde_json::Value, Vec<String>) {
    let tool = venv_tool("checkov");
    let out = Command::new(&tool)
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
            "--file",
        ])
        .arg(file)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let report = if json.is_array() { &json[0] } else { &json };
    let failed = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    format!(
                        "{} ({}: {})",
                        c["check_id"].as_str().unwrap_or("?"),
                        c["resource"].as_str().unwrap_or("?"),
                        c["check_name"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    eprintln!("{}: checkov {}", file.display(), report["summary"]);
    (report["summary"].clone(), failed)
}

fn assert_checkov_clean(file: &Path) {
    let (summary, failed) = checkov(file);
    assert!(
        failed.is_empty(),
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    assert_eq!(summary["skipped"], 0, "{summary}");
    assert!(summary["passed"].as_u64().unwrap_or(0) >= 80, "{summary}");
}

#[test]
fn k8s_manifests_for_the_example_validate_and_pass_checkov() {
    let d = example();
    let (file, err) = export(
        &d,
        "image-edit.yaml",
        &[
            "k8s",
            "--image",
            "registry.invalid/image-edit:1.0",
            "--digest",
            DIGEST,
        ],
    );
    kubernetes_validate(&file);
    assert_checkov_clean(&file);
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn k8s_manifests_for_a_public_gpu_service_validate_and_pass_checkov() {
    let d = example();
    gpu(&d);
    public(&d);
    let (file, _) = export(
        &d,
        "image-edit.yaml",
        &[
            "k8s",
            "--image",
            "registry.invalid/image-edit:1.0",
            "--digest",
            DIGEST,
            "--replicas",
            "2",
            "--namespace",
            "models",
        ],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("nvidia.com/gpu: 1"), "{text}");
    assert!(text.contains("kind: PodDisruptionBudget"));
    assert!(text.contains("httpGet:"));
    kubernetes_validate(&file);
    assert_checkov_clean(&file);
}

#[test]
fn k8s_manifests_without_a_digest_fail_only_the_digest_check() {
    let d = example();
    let (file, err) = export(&d, "image-edit.yaml", &["k8s"]);
    assert!(err.contains("--digest"), "{err}");
    assert!(err.contains("placeholder"), "{err}");
    kubernetes_validate(&file);
    let (_, failed) = checkov(&file);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with("CKV_K8S_43 "), "{failed:?}");
}

#[test]
fn export_writes_to_stdout_and_refuses_bad_options() {
    let d = example();
    let out = d
        .warden(&["export", "systemd", "--no-warden"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let unit = String::from_utf8(out.stdout).unwrap();
    assert!(unit.starts_with("# image-edit.service: written by `warden export systemd`"));
    assert!(unit.contains("\n[Service]\n"));

    let out = d.warden(&["export", "k8s", "--uid", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--uid"));
    let out = d
        .warden(&["export", "k8s", "--digest", "latest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha256"));
    let out = d
        .warden(&["export", "systemd", "--no-warden", "--warden-bin", "/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "conflicting flags");
}

#[test]
fn status_ready_fails_when_nothing_runs() {
    let d = example();
    let out = d.warden(&["status", "--ready"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not ready: not running"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_reads_the_exports_back_against_the_policy() {
    let d = example();
    let (unit, _) = export(&d, "image-edit.service", &["systemd"]);
    let (manifest, _) = export(
        &d,
        "image-edit.yaml",
        &["k8s", "--image", "registry.invalid/x:1", "--digest", DIGEST],
    );
    let check = |unit: &Path, manifest: &Path| {
        let out = d
            .warden(&["check", "--format", "json", "--unit"])
            .arg(unit)
            .arg("--manifest")
            .arg(manifest)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let of = |list: &str| -> Vec<String> {
            v[list]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| {
                    // Passed checks name it `check`, findings `id`.
                    f["check"]
                        .as_str()
                        .or(f["id"].as_str())
                        .is_some_and(|c| c.starts_with("export."))
                })
                .map(|f| f.to_string())
                .collect()
        };
        (of("passed"), of("findings"))
    };
    let (passed, findings) = check(&unit, &manifest);
    assert_eq!(
        (passed.len(), findings.len()),
        (2, 0),
        "{passed:?} {findings:?}"
    );

    // A hand edit that drops a protection, and a tier mounted writable.
    let u = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, u.replace("NoNewPrivileges=yes\n", "")).unwrap();
    let m = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        m.replace(
            "              subPath: models/Qwen\n              readOnly: true\n",
            "              subPath: models/Qwen\n",
        )
        .replace(
            "            claimName: image-edit-weights\n            readOnly: true\n",
            "            claimName: image-edit-weights\n",
        ),
    )
    .unwrap();
    let (passed, findings) = check(&unit, &manifest);
    assert!(passed.is_empty(), "{passed:?}");
    let all = findings.join("\n");
    assert!(all.contains("NoNewPrivileges=yes is missing"), "{all}");
    assert!(all.contains("models/Qwen is writable"), "{all}");
}
