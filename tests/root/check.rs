//! `warden check` as root: a deployment built the usual hand-made way shows each of its holes;
//! the example after `warden harden` and `warden seal` is clean.

use std::os::unix::fs::PermissionsExt;

use crate::common::set_mode;
use crate::common::{TestAccount, copy_tree};
use crate::probe::hardened_example;

fn check_json(cmd: &mut assert_cmd::Command) -> (Option<i32>, serde_json::Value) {
    let out = cmd.output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

fn finding<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} finding: {v:#}"))
}

#[test]
fn a_deployment_hardened_by_hand_shows_each_hole() {
    // The usual recipe: useradd -r -s /bin/false aiuser; chown -R aiuser; chmod 440 the
    // weights; the app in root's home (a 0700 parent); gradio.log 0644; --share in the command.
    let acct = TestAccount::create("hand");
    let name = &acct.name;
    let home = tempfile::Builder::new()
        .prefix("wdt-home-")
        .tempdir()
        .unwrap();
    set_mode(home.path(), 0o700);
    let app = home.path().join("qwen_image");
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/image-edit"),
        &app,
    );
    std::fs::write(app.join("gradio.log"), "INFO prompt=make it blue\n").unwrap();
    set_mode(&app.join("gradio.log"), 0o644);
    let policy = std::fs::read_to_string(app.join("warden.toml"))
        .unwrap()
        .replace(
            "\"--server-port\", \"7860\"]",
            "\"--server-port\", \"7860\", \"--share\"]",
        )
        .replace("\"aiuser\"", &format!("\"{name}\""))
        .replace("\"aiusers\"", &format!("\"{name}\""));
    std::fs::write(app.join("warden.toml"), policy).unwrap();
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{name}:{name}")])
        .arg(&app)
        .status()
        .unwrap();
    assert!(status.success());
    for w in [
        "models/Qwen/Qwen-Image/diffusion_pytorch_model.safetensors",
        "models/Qwen/Qwen-Image-Edit/diffusion_pytorch_model.safetensors",
        "models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors",
    ] {
        std::fs::set_permissions(app.join(w), std::fs::Permissions::from_mode(0o440)).unwrap();
    }
    let mut cmd = crate::common::warden();
    cmd.arg("-c")
        .arg(app.join("warden.toml"))
        .args(["check", "--format", "json"]);
    let (code, v) = check_json(&mut cmd);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["clean"], false);
    let found = ids(&v);
    for id in [
        "tier.owned-by-account",
        "path.untraversable",
        "logs.stray",
        "service.share",
    ] {
        assert!(found.iter().any(|f| f == id), "{id} missing: {v:#}");
    }
    // One finding per tier; the weights' own is there, 0440 and all.
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["id"] == "tier.owned-by-account"
                && f["seen"].as_str().unwrap().contains("tier models/Qwen ")
        })
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(f["severity"], "high");
    let seen = f["seen"].as_str().unwrap();
    assert!(
        seen.contains(&format!("{name}:{name} 0440")) && seen.contains("diffusion_pytorch_model"),
        "{f}"
    );
    assert!(f["fix"].as_str().unwrap().contains("warden harden"), "{f}");
    let f = finding(&v, "path.untraversable");
    let parent = home.path().canonicalize().unwrap();
    assert!(
        f["seen"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} (root:root 0700)", parent.display())),
        "{f}"
    );
    let f = finding(&v, "logs.stray");
    assert!(
        f["seen"].as_str().unwrap().contains("gradio.log")
            && f["seen"].as_str().unwrap().contains("0644"),
        "{f}"
    );
    assert!(
        finding(&v, "service.share")["seen"]
            .as_str()
            .unwrap()
            .contains("--share")
    );
    for f in v["findings"].as_array().unwrap() {
        for k in ["id", "severity", "seen", "fix"] {
            assert!(f[k].as_str().is_some_and(|s| !s.is_empty()), "{k} in {f}");
        }
    }
    // The table names the same holes for people.
    let mut cmd = crate::common::warden();
    cmd.arg("-c").arg(app.join("warden.toml")).arg("check");
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    for id in [
        "tier.owned-by-account",
        "path.untraversable",
        "logs.stray",
        "service.share",
    ] {
        assert!(text.contains(id), "{id}:\n{text}");
    }
}

#[test]
fn the_hardened_example_is_clean() {
    let (d, _acct) = hardened_example("clean");
    let out = d.warden(&["seal"]).output().unwrap();
    assert!(
        out.status.success(),
        "seal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, v) = check_json(&mut d.warden(&["check", "--format", "json"]));
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["clean"], true);
    let passed: Vec<&str> = v["passed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["check"].as_str().unwrap())
        .collect();
    for c in [
        "account",
        "tiers",
        "tree",
        "ancestors",
        "private",
        "listen",
        "sandbox",
        "integrity.manifest",
        "scan.findings",
    ] {
        assert!(passed.contains(&c), "{c}: {v:#}");
    }
    let out = d.warden(&["check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": clean ("), "{text}");

    // A weight swapped afterwards is a finding of the integrity check.
    let w = d
        .path()
        .join("models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let (code, v) = check_json(&mut d.warden(&["check", "--format", "json"]));
    assert_eq!(code, Some(1), "{v:#}");
    assert!(ids(&v).contains(&"integrity.manifest".to_owned()), "{v:#}");
}
