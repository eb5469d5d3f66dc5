//! `warden seal` and `warden verify`: the manifest, quick and full verification, Hugging Face
//! cache blobs, and `run` refusing to start on a difference or a dangerous file.

use std::os::unix::fs::PermissionsExt;

use crate::common::Deployment;
use crate::scan::safetensors_bytes;

fn deployment() -> Deployment {
    let d = Deployment::empty();
    d.write(
        "warden.toml",
        "[service]\nname = \"t\"\ncommand = [\"/bin/true\"]\nuser = \"nobody\"\ngroup = \"nogroup\"\nrestart = { policy = \"never\" }\n\n[[tier]]\npath = \"models\"\n\n[integrity]\nverify = \"quick\"\n",
    );
    d.write("models/base/model.safetensors", safetensors_bytes());
    d.write("models/base/config.json", br#"{"hidden": 4}"#);
    d.write("models/lora/adapter_config.json", b"{}");
    d
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn seal_then_verify_clean() {
    let d = deployment();
    let out = d.warden(&["seal", "--format", "json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["files"], 3);
    let manifest = d.path().join("state/integrity/manifest.json");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["digest"], "sha256");
    let f = m["files"].as_array().unwrap();
    assert!(
        f.iter()
            .any(|e| e["path"] == "models/base/model.safetensors"
                && e["size"] == safetensors_bytes().len())
    );
    d.warden(&["verify", "--quick"]).assert().code(0);
    d.warden(&["verify", "--full"]).assert().code(0);
    d.warden(&["verify"]).assert().code(0);
}

#[test]
fn verify_reports_missing_extra_modified() {
    let d = deployment();
    d.warden(&["seal"]).assert().code(0);
    std::fs::remove_file(d.path().join("models/base/config.json")).unwrap();
    d.write("models/lora/adapter_model.bin", b"new");
    // Same size, different content: quick sees the times, full sees the content.
    let p = d.path().join("models/lora/adapter_config.json");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&p, b"[]").unwrap();
    for mode in ["--quick", "--full"] {
        let out = d
            .warden(&["verify", mode, "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{mode}");
        let v = json(&out);
        let diffs = v["differences"].as_array().unwrap();
        let kind = |path: &str| {
            diffs
                .iter()
                .find(|x| x["path"] == path)
                .map(|x| x["kind"].as_str().unwrap().to_owned())
        };
        assert_eq!(
            kind("models/base/config.json").as_deref(),
            Some("missing"),
            "{v}"
        );
        assert_eq!(
            kind("models/lora/adapter_model.bin").as_deref(),
            Some("extra"),
            "{v}"
        );
        assert_eq!(
            kind("models/lora/adapter_config.json").as_deref(),
            Some("modified"),
            "{v}"
        );
    }
}

#[test]
fn full_verify_catches_same_size_same_times() {
    let d = deployment();
    d.warden(&["seal"]).assert().code(0);
    let p = d.path().join("models/base/model.safetensors");
    let meta = std::fs::metadata(&p).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    // Put the mtime back: a quick verify still sees the ctime, a full one the content.
    let mtime = filetime_of(&meta);
    set_mtime(&p, mtime);
    let out = d.warden(&["verify", "--full"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("content differs"));
    d.warden(&["verify", "--quick"]).assert().code(1);
}

fn filetime_of(m: &std::fs::Metadata) -> std::time::SystemTime {
    m.modified().unwrap()
}

fn set_mtime(p: &std::path::Path, t: std::time::SystemTime) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn seal_refuses_symlinks_and_blake3_works() {
    let d = deployment();
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("models/base/link")).unwrap();
    let out = d.warden(&["seal"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    std::fs::remove_file(d.path().join("models/base/link")).unwrap();
    d.warden(&["seal", "--digest", "blake3"]).assert().code(0);
    d.warden(&["verify", "--full"]).assert().code(0);
}

#[test]
fn manifest_with_unsafe_paths_or_foreign_owner_is_refused() {
    let d = deployment();
    d.warden(&["seal"]).assert().code(0);
    let p = d.path().join("state/integrity/manifest.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replace("models/base/config.json", "../../etc/passwd"),
    )
    .unwrap();
    let out = d.warden(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsafe path"));
    d.warden(&["seal"]).assert().code(0);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = d.warden(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not trusted"));
    std::fs::remove_file(&p).unwrap();
    let out = d.warden(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warden seal"));
}

#[test]
fn hugging_face_blobs_verify_against_their_names() {
    let d = Deployment::empty();
    let content = b"weights";
    let sha = {
        use std::io::Write;
        let mut c = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(content).unwrap();
        let out = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_owned()
    };
    let blobs = "hub/models--org--m/blobs";
    d.write(&format!("{blobs}/{sha}"), content);
    // git blob id of "{}\n"... computed the way git does: sha1("blob 3\0{}\n").
    d.write(
        &format!("{blobs}/0967ef424bce6791893e9a57bb952f80fd536e93"),
        b"{}\n",
    );
    let hub = d.path().join("hub");
    let out = crate::common::warden()
        .arg("verify")
        .arg("--hf-cache")
        .arg(&hub)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    d.write(&format!("{blobs}/{sha}"), b"tampered");
    let out = crate::common::warden()
        .arg("verify")
        .arg("--hf-cache")
        .arg(&hub)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHA-256"));
}

#[test]
fn run_refuses_on_difference_and_on_dangerous_files() {
    let d = deployment();
    // No manifest yet: the first start seals the tiers as they are (and scans them).
    let out = d.warden(&["run", "--no-echo"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sealing the tiers"), "{err}");
    assert!(d.path().join("state/integrity/manifest.json").exists());
    // A dangerous file, sealed: verify passes, the scan refuses.
    d.write(
        "models/lora/adapter_model.bin",
        b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.",
    );
    d.warden(&["seal"]).assert().code(0);
    let out = d.warden(&["run", "--no-echo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model scan") && err.contains("os.system"),
        "{err}"
    );
    // Clean again, sealed: the three clean files were cached by the refused start, so the
    // scan skips them all.
    std::fs::remove_file(d.path().join("models/lora/adapter_model.bin")).unwrap();
    d.warden(&["seal"]).assert().code(0);
    let out = d.warden(&["run", "--no-echo"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 files scanned, 3 unchanged"), "{err}");
    // A modified file: quick verify refuses.
    d.write("models/base/config.json", br#"{"hidden": 5}"#);
    let out = d.warden(&["run", "--no-echo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("difference"));
}
