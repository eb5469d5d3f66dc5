//! `warden init`: weights found by content, tiers, the guessed command, warnings, and never
//! overwriting a policy without --force.

use predicates::prelude::*;
use warden::policy::Policy;

use crate::common::{Deployment, warden};

/// A safetensors file (the name says nothing; the content does).
fn safetensors() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}}"#;
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&[0; 16]);
    v
}

/// A GGUF v3 header with no tensors and no metadata.
fn gguf() -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend_from_slice(&3u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v
}

/// A raw protocol 2 pickle, as `torch.save(..., _use_new_zipfile_serialization=False)`-era
/// `.pt` files and plain `pickle.dump` write them.
const PICKLE: &[u8] =
    b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02K\x01s.";

/// A stored zip, written the way torch.save lays out a checkpoint.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let name_len = name.len() as u16;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[20, 0, 0, 8, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 0, 20, 0, 0, 8, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_size, n) = (out.len() as u32, central.len() as u32, entries.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn torch_zip() -> Vec<u8> {
    zip(&[
        ("archive/data.pkl", PICKLE),
        ("archive/.format_version", b"1"),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &[0; 64]),
        ("archive/version", b"3\n"),
    ])
}

const GRADIO_APP: &str = "import gradio as gr\n\ndef edit(img, prompt):\n    return img\n\n\
                          demo = gr.Interface(edit, ['image', 'text'], 'image')\n\
                          if __name__ == '__main__':\n    demo.launch()\n";

const START_SH: &str = "#!/bin/bash\ncd \"$(dirname \"$0\")\"\n\
                        nohup python3 app_gradio.py --server-name 0.0.0.0 --server-port 7860 --share > gradio.log 2>&1 &\n\
                        echo $! > app.pid\n";

/// The reference deployment of DESIGN.md, with each weight format named against its content.
fn reference() -> Deployment {
    let d = Deployment::empty();
    d.write("app_gradio.py", GRADIO_APP)
        .write("start.sh", START_SH)
        .write("requirements.txt", "gradio\n")
        .write("models/Qwen/Qwen-Image/weights.dat", safetensors())
        .write("models/Qwen/Qwen-Image/config.json", "{}")
        .write("models/Qwen/Qwen-Image-Edit/model.gguf", gguf())
        .write(
            "models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.bin",
            torch_zip(),
        )
        .write(
            "models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_config.json",
            r#"{"peft_type": "LORA", "r": 16}"#,
        )
        .write("checkpoints/old/checkpoint.pt", PICKLE)
        .write(
            "notes/model.safetensors",
            "this is a text file, not a model, whatever its name says\n",
        );
    d
}

/// Parses the written policy as warden would.
fn load(d: &Deployment) -> Policy {
    Policy::load(&d.policy()).unwrap_or_else(|e| panic!("{e}"))
}

fn tier_paths(p: &Policy) -> Vec<String> {
    let mut v: Vec<String> = p
        .tiers
        .iter()
        .map(|t| t.rel.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn proposes_tiers_command_and_warnings_for_the_reference_deployment() {
    let d = reference();
    let out = warden()
        .arg("init")
        .arg(d.path())
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(out.stdout.is_empty(), "the policy goes to the file");
    let err = String::from_utf8(out.stderr).unwrap();

    let policy = load(&d);
    assert_eq!(
        tier_paths(&policy),
        [
            "checkpoints/old",
            "models/DiffSynth-Studio/Qwen-Image-Edit-F2P",
            "models/Qwen",
        ]
    );
    assert!(policy.read_only_tiers().count() == 3);
    assert_eq!(
        policy.service.command,
        [
            "python3",
            "app_gradio.py",
            "--server-name",
            "127.0.0.1",
            "--server-port",
            "7860"
        ]
    );
    assert_eq!(
        policy.service.listen,
        ["127.0.0.1:7860".parse::<std::net::SocketAddr>().unwrap()]
    );
    assert_eq!(
        policy.service.user.as_str(),
        warden::init::account_from_dir(&policy.root)
    );
    assert_eq!(policy.logs_dir, policy.root.join("logs"));
    assert_eq!(policy.tmp_dir, policy.root.join("tmp"));
    assert_eq!(policy.state_dir, policy.root.join("state"));

    for needle in [
        "start.sh uses --share: warden will refuse it",
        "models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.bin is a pickle: it runs code when loaded",
        "checkpoints/old/checkpoint.pt is a pickle: it runs code when loaded",
        "python3 app_gradio.py --server-name 127.0.0.1 --server-port 7860",
        "(from start.sh line 3)",
        "1 GGUF, 1 PyTorch zip checkpoint, 1 pickle, 1 safetensors",
        "wrote ",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(
        !err.contains("notes"),
        "the text file is not a model:\n{err}"
    );

    let text = std::fs::read_to_string(d.policy()).unwrap();
    for needle in [
        "# An adapter (LoRA or similar)",
        "# Base models (2): models/Qwen/Qwen-Image, models/Qwen/Qwen-Image-Edit.",
        "weights: 1 GGUF, 1 safetensors.",
        "# adapter_model.bin is a pickle: it runs code when loaded.",
        "# --share is left out",
        "#     nohup python3 app_gradio.py --server-name 0.0.0.0 --server-port 7860 --share",
        "ready = { http = \"http://127.0.0.1:7860/\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("notes/"), "{text}");

    d.warden(&["validate"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("OK: "));
}

#[test]
fn a_text_file_named_like_weights_is_not_a_model() {
    let d = Deployment::empty();
    d.write("app.py", GRADIO_APP)
        .write("models/fake/model.safetensors", "not a model\n")
        .write("models/fake/pytorch_model.bin", "neither is this\n")
        .write("models/fake/model.gguf", "GGUF? no.\n");
    let out = warden()
        .arg("init")
        .arg(d.path())
        .args(["-o", "-"])
        .assert()
        .success()
        .stderr(predicate::str::contains("no model weights were found"))
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("[[tier]]")), "{text}");
    assert!(
        text.contains("command = [\"python3\", \"app.py\"]"),
        "{text}"
    );
    let file = d.path().canonicalize().unwrap().join("warden.toml");
    let policy = Policy::from_str(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    assert!(policy.tiers.is_empty());
    assert!(!d.policy().exists(), "-o - writes nothing");
}

#[test]
fn an_existing_policy_is_kept_without_force() {
    let d = reference();
    d.write("warden.toml", "# mine\n");
    warden().arg("init").arg(d.path()).assert().code(2).stderr(
        predicate::str::contains("already exists")
            .and(predicate::str::contains("--force"))
            .and(predicate::str::contains("-o FILE")),
    );
    assert_eq!(std::fs::read_to_string(d.policy()).unwrap(), "# mine\n");

    // -o - prints a proposal without touching the file.
    warden()
        .arg("init")
        .arg(d.path())
        .args(["-o", "-"])
        .assert()
        .success()
        .stdout(predicate::str::contains("[service]"));
    assert_eq!(std::fs::read_to_string(d.policy()).unwrap(), "# mine\n");

    // Another output file is refused the same way, and written when new.
    let other = d.path().join("proposal.toml");
    std::fs::write(&other, "keep").unwrap();
    warden()
        .arg("init")
        .arg(d.path())
        .arg("-o")
        .arg(&other)
        .assert()
        .code(2);
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep");

    warden()
        .arg("init")
        .arg(d.path())
        .arg("--force")
        .assert()
        .success();
    let text = std::fs::read_to_string(d.policy()).unwrap();
    assert!(text.contains("[service]"), "{text}");
    load(&d);
}

#[test]
fn a_symlink_at_the_target_is_replaced_not_followed() {
    let d = reference();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "outside").unwrap();
    std::os::unix::fs::symlink(outside.path(), d.policy()).unwrap();
    warden().arg("init").arg(d.path()).assert().code(2);
    warden()
        .arg("init")
        .arg(d.path())
        .arg("--force")
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(outside.path()).unwrap(), "outside");
    assert!(!std::fs::symlink_metadata(d.policy()).unwrap().is_symlink());
    load(&d);
}

#[test]
fn hugging_face_cache_entries_become_tiers() {
    let d = Deployment::empty();
    d.write("app.py", GRADIO_APP)
        .write("hf/hub/version.txt", "1")
        .write("hf/hub/models--Qwen--Qwen-Image/refs/main", "abc123")
        .write(
            "hf/hub/models--Qwen--Qwen-Image/blobs/5f1e0d",
            safetensors(),
        )
        .write("hf/hub/models--Qwen--Qwen-Image/blobs/77aa01", "{}")
        .write("hf/hub/models--org--edit-lora/blobs/9c9c9c", torch_zip());
    let snap = d
        .path()
        .join("hf/hub/models--Qwen--Qwen-Image/snapshots/abc123");
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink("../../blobs/5f1e0d", snap.join("model.safetensors")).unwrap();
    std::os::unix::fs::symlink("../../blobs/77aa01", snap.join("config.json")).unwrap();
    let snap = d.path().join("hf/hub/models--org--edit-lora/snapshots/r1");
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink("../../blobs/9c9c9c", snap.join("adapter_model.bin")).unwrap();

    warden()
        .arg("init")
        .arg(d.path())
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "hf/hub/models--org--edit-lora/blobs/9c9c9c is a pickle",
        ));
    let policy = load(&d);
    assert_eq!(
        tier_paths(&policy),
        [
            "hf/hub/models--Qwen--Qwen-Image",
            "hf/hub/models--org--edit-lora"
        ]
    );
    assert_eq!(
        policy.service.env.get("HF_HUB_OFFLINE").map(String::as_str),
        Some("1")
    );
    let text = std::fs::read_to_string(d.policy()).unwrap();
    assert!(text.contains("# A Hugging Face cache entry"), "{text}");
}

#[test]
fn user_option_and_derived_names() {
    let d = reference();
    warden()
        .arg("init")
        .arg(d.path())
        .args(["--user", "Not Valid"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid account name"));
    assert!(!d.policy().exists());
    warden()
        .arg("init")
        .arg(d.path())
        .args(["--user", "aiuser"])
        .assert()
        .success();
    assert_eq!(load(&d).service.user.as_str(), "aiuser");

    // A directory name that is no account name still gives a valid one.
    let parent = tempfile::tempdir().unwrap();
    let odd = parent.path().join("2024 Qwen.Image (prod)");
    std::fs::create_dir(&odd).unwrap();
    std::fs::write(odd.join("app.py"), GRADIO_APP).unwrap();
    warden().arg("init").arg(&odd).assert().success();
    let policy = Policy::load(&odd.join("warden.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.service.user.as_str(), "svc-2024-qwen-image-prod");
}

#[test]
fn placeholder_command_when_nothing_is_obvious() {
    let d = Deployment::empty();
    d.write("models/m/weights.bin", safetensors())
        .write("tool.py", "print('hello')\n");
    let out = warden()
        .arg("init")
        .arg(d.path())
        .args(["-o", "-"])
        .assert()
        .success()
        .stderr(predicate::str::contains("placeholder"))
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("command = [\"CHANGE-ME\"]"), "{text}");
    assert!(text.contains("# FILL IN"), "{text}");
    let file = d.path().canonicalize().unwrap().join("warden.toml");
    let policy = Policy::from_str(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tier_paths(&policy), ["models/m"]);
}

#[test]
fn hostile_file_names_are_escaped_on_the_terminal_and_valid_in_toml() {
    let d = reference();
    d.write("weights/evil\x1b[2J\"name\\/x.pt", PICKLE);
    let out = warden()
        .arg("init")
        .arg(d.path())
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(
        err.contains("evil\\u{1b}[2J\"name\\/x.pt is a pickle"),
        "{err}"
    );
    let policy = load(&d);
    assert!(
        tier_paths(&policy).contains(&"weights/evil\x1b[2J\"name\\".to_owned()),
        "{:?}",
        tier_paths(&policy)
    );
    d.warden(&["validate"]).assert().success();
}

#[test]
fn the_directory_must_exist() {
    warden()
        .args(["init", "/nonexistent/deployment"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/deployment"));
    let file = tempfile::NamedTempFile::new().unwrap();
    warden()
        .arg("init")
        .arg(file.path())
        .args(["-o", "-"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a directory"));
}
