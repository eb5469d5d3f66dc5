//! `warden probe` as root on the example deployment, and as an ordinary user: the attacks run
//! in a child warden starts as the service (same account, same sandbox), never in the harness.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::common::set_mode;
use crate::common::{Deployment, TestAccount, make_traversable};

/// examples/image-edit with its own account name and a free port, hardened.
pub fn hardened_example(tag: &str) -> (Deployment, TestAccount) {
    let acct = TestAccount::reserve(tag);
    let d = Deployment::example("image-edit");
    make_traversable(d.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = &acct.name;
    let policy = std::fs::read_to_string(d.policy())
        .unwrap()
        .replace("7860", &port.to_string())
        .replace("name    = \"image-edit\"", &format!("name    = \"{name}\""))
        .replace("\"aiuser\"", &format!("\"{name}\""))
        .replace("\"aiusers\"", &format!("\"{name}\""));
    std::fs::write(d.policy(), policy).unwrap();
    let out = d.warden(&["harden"]).output().unwrap();
    assert!(
        out.status.success(),
        "harden: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (d, acct)
}

fn probe(cmd: &mut assert_cmd::Command) -> (Option<i32>, serde_json::Value, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), v, stderr)
}

fn verdict<'a>(v: &'a serde_json::Value, id: &str) -> Vec<&'a str> {
    v["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["id"] == id)
        .map(|o| o["verdict"].as_str().unwrap())
        .collect()
}

const WEIGHT_ATTACKS: [&str; 7] = [
    "weights.write",
    "weights.truncate",
    "weights.chmod",
    "weights.rename",
    "weights.delete",
    "weights.replace-adapter",
    "weights.create",
];

const OTHER_ATTACKS: [&str; 13] = [
    "outside.tmp",
    "outside.var-tmp",
    "outside.app",
    "outside.logs",
    "outside.policy",
    "secrets.shadow",
    "net.bind-port",
    "net.bind-any",
    "priv.setuid",
    "priv.signal",
    "priv.ptrace",
    "limits.core",
    "limits.fork",
];

#[test]
fn probe_blocks_every_attack_on_the_hardened_example() {
    let (d, acct) = hardened_example("probe");
    let weights_before = std::fs::read(
        d.path()
            .join("models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors"),
    )
    .unwrap();
    let (code, v, err) = probe(&mut d.warden(&["probe", "--format", "json"]));
    assert_eq!(code, Some(0), "{v:#}\n{err}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["user"], acct.name.as_str());
    assert_eq!(v["sandbox"]["landlock"], "full", "{v:#}");
    for id in WEIGHT_ATTACKS.iter().chain(OTHER_ATTACKS.iter()) {
        let got = verdict(&v, id);
        assert!(!got.is_empty(), "{id} did not run: {v:#}");
        assert!(got.iter().all(|g| *g == "blocked"), "{id}: {got:?} {v:#}");
    }
    // The adapter of the example is the directory an attacker would swap.
    let adapter = v["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "weights.replace-adapter")
        .unwrap();
    assert!(
        adapter["target"]
            .as_str()
            .unwrap()
            .ends_with("Qwen-Image-Edit-F2P"),
        "{adapter}"
    );
    for id in [
        "control.read-weights",
        "control.write-tmp",
        "control.bind-own",
    ] {
        assert_eq!(verdict(&v, id), ["passed"], "{id}: {v:#}");
    }
    // Nothing was changed by the attacks.
    let p = d
        .path()
        .join("models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors");
    assert_eq!(std::fs::read(&p).unwrap(), weights_before);
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o440));
    // The table says the same for people.
    let out = d.warden(&["probe"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("attacks blocked;") && !text.contains("ALLOWED") && !text.contains("FAILED"),
        "{text}"
    );
}

#[test]
fn loosened_modes_are_still_held_by_landlock() {
    let (d, _acct) = hardened_example("loose");
    // Modes drift: every weight and tier directory writable by everyone.
    for dir in [
        "models/Qwen",
        "models/Qwen/Qwen-Image",
        "models/Qwen/Qwen-Image-Edit",
        "models/DiffSynth-Studio/Qwen-Image-Edit-F2P",
    ] {
        set_mode(&d.path().join(dir), 0o777);
    }
    for f in [
        "models/Qwen/Qwen-Image/config.json",
        "models/Qwen/Qwen-Image/diffusion_pytorch_model.safetensors",
        "models/Qwen/Qwen-Image-Edit/config.json",
        "models/Qwen/Qwen-Image-Edit/diffusion_pytorch_model.safetensors",
        "models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_config.json",
        "models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors",
    ] {
        set_mode(&d.path().join(f), 0o666);
    }
    let (code, v, err) = probe(&mut d.warden(&["probe", "--format", "json"]));
    assert_eq!(code, Some(0), "{v:#}\n{err}");
    for id in [
        "weights.write",
        "weights.truncate",
        "weights.rename",
        "weights.delete",
        "weights.create",
        "weights.replace-adapter",
    ] {
        let got = verdict(&v, id);
        assert!(got.iter().all(|g| *g == "blocked"), "{id}: {got:?}");
    }
    // Without Landlock the same modes let the service write: the kernel sandbox was the layer
    // that held.
    let policy = std::fs::read_to_string(d.policy())
        .unwrap()
        .replace("landlock = \"best-effort\"", "landlock = \"off\"");
    std::fs::write(d.policy(), policy).unwrap();
    let (code, v, _) = probe(&mut d.warden(&["probe", "--format", "json"]));
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(v["sandbox"]["landlock"], "off");
    assert_eq!(verdict(&v, "weights.write"), ["allowed"], "{v:#}");
    assert_eq!(verdict(&v, "weights.truncate"), ["allowed"], "{v:#}");
    // The probe put everything back.
    let w = d
        .path()
        .join("models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors");
    assert!(std::fs::metadata(&w).unwrap().len() > 0);
}

#[test]
fn rootless_probe_shows_landlock_holding() {
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("nobody");
    let d = Deployment::example("image-edit");
    // An ordinary user's deployment: everything is theirs, the weights writable by their modes.
    let uid = nobody.uid.as_raw();
    let gid = nobody.gid.as_raw();
    chown_tree(d.path(), uid, gid);
    make_traversable(d.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policy = std::fs::read_to_string(d.policy())
        .unwrap()
        .replace("7860", &port.to_string());
    std::fs::write(d.policy(), policy).unwrap();
    let w = d
        .path()
        .join("models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.safetensors");
    set_mode(&w, 0o644);
    let before = std::fs::read(&w).unwrap();
    let mut cmd = assert_cmd::Command::new("setpriv");
    cmd.args(["--reuid", &uid.to_string(), "--regid", &gid.to_string()])
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_warden"))
        .arg("-c")
        .arg(d.policy())
        .args(["probe", "--format", "json"])
        .env_remove("WARDEN_POLICY");
    let (code, v, err) = probe(&mut cmd);
    assert_eq!(v["uid"], uid, "{v:#}\n{err}");
    assert!(err.contains("not started as root"), "{err}");
    assert_eq!(v["sandbox"]["landlock"], "full", "{v:#}");
    // What Landlock guards holds without root, although the files are the user's own.
    for id in [
        "weights.write",
        "weights.truncate",
        "weights.rename",
        "weights.delete",
        "weights.replace-adapter",
        "weights.create",
        "outside.tmp",
        "outside.app",
        "outside.logs",
        "outside.policy",
        "secrets.shadow",
        "net.bind-port",
        "net.bind-any",
        "priv.setuid",
        "priv.signal",
        "priv.ptrace",
        "limits.core",
        "limits.fork",
    ] {
        let got = verdict(&v, id);
        assert!(
            !got.is_empty() && got.iter().all(|g| *g == "blocked"),
            "{id}: {got:?} {v:#}"
        );
    }
    // chmod is not Landlock's to stop: an owner may chmod its files, and the probe says so.
    assert_eq!(verdict(&v, "weights.chmod"), ["allowed"], "{v:#}");
    assert_eq!(code, Some(1), "{v:#}");
    for id in [
        "control.read-weights",
        "control.write-tmp",
        "control.bind-own",
    ] {
        assert_eq!(verdict(&v, id), ["passed"], "{id}: {v:#}");
    }
    assert_eq!(std::fs::read(&w).unwrap(), before);
    let _ = Command::new("chown")
        .args(["-R", "root:root"])
        .arg(d.path())
        .status();
}

fn chown_tree(p: &std::path::Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(p).unwrap().is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[test]
fn the_accounts_own_home_is_out_of_reach() {
    // An account with a real home of its own: its modes allow writing there, the sandbox not.
    let s = crate::sandbox::Sandboxed::new("home", "true", "", "nproc = 64");
    let home = tempfile::Builder::new()
        .prefix("wdt-home-")
        .tempdir()
        .unwrap();
    make_traversable(home.path());
    let uid = s.acct.uid();
    std::os::unix::fs::chown(home.path(), Some(uid), Some(s.acct.gid())).unwrap();
    let st = Command::new("usermod")
        .arg("-d")
        .arg(home.path())
        .arg(&s.acct.name)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, v, err) = probe(&mut s.d.warden(&["probe", "--format", "json"]));
    assert_eq!(code, Some(0), "{v:#}\n{err}");
    let home_attack = v["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "outside.home")
        .unwrap();
    assert_eq!(home_attack["verdict"], "blocked", "{v:#}");
    assert!(
        home_attack["target"]
            .as_str()
            .unwrap()
            .starts_with(&*home.path().to_string_lossy()),
        "{home_attack}"
    );
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}
