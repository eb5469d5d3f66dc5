//! `warden harden` as root: the account is created, every file ends with exactly the policy's
//! owner and mode, a second run changes nothing (not even a ctime), and the account can read
//! the weights but never change them.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::common::{Deployment, TestAccount, make_traversable};

/// Account creation takes the account database's lock: one harden run at a time here.
static ACCOUNTS: Mutex<()> = Mutex::new(());

const RO_TIERS: [&str; 2] = ["models/Qwen", "models/DiffSynth-Studio/Qwen-Image-Edit-F2P"];

const WEIGHTS: [&str; 5] = [
    "models/Qwen/Qwen-Image/model-00001-of-00002.safetensors",
    "models/Qwen/Qwen-Image/model-00002-of-00002.safetensors",
    "models/Qwen/Qwen-Image/transformer/diffusion_pytorch_model.safetensors",
    "models/Qwen/Qwen-Image-Edit/diffusion_pytorch_model.safetensors",
    "models/DiffSynth-Studio/Qwen-Image-Edit-F2P/adapter_model.bin",
];

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "tests/root/harden.rs must run as root (CI does): sudo cargo test --test root"
    );
}

/// The reference deployment in small: the app, two read-only tiers, logs and tmp with content.
fn qwen(user: &str, extra: &str) -> Deployment {
    let d = Deployment::empty();
    make_traversable(d.path());
    for w in WEIGHTS {
        d.write(w, format!("weights of {w}"));
    }
    d.write("models/Qwen/Qwen-Image/config.json", b"{}")
        .write("app_gradio.py", b"import gradio\n")
        .write("start.sh", b"#!/bin/sh\nexec python3 app_gradio.py\n")
        .write("logs/gradio.log", b"INFO prompt=make it blue\n")
        .write("logs/archive/gradio.log.1.gz", b"old")
        .write("tmp/upload.png", b"png")
        .write("tmp/helper.sh", b"#!/bin/sh\n")
        .write(
            "warden.toml",
            format!(
                "[service]\nname = \"qwen\"\ncommand = [\"python3\", \"app_gradio.py\"]\n\
                 user = \"{user}\"\n{extra}\n[[tier]]\npath = \"{}\"\n\n[[tier]]\npath = \"{}\"\n",
                RO_TIERS[0], RO_TIERS[1]
            ),
        );
    let mode = |p: &str, m: u32| {
        std::fs::set_permissions(d.path().join(p), std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode("start.sh", 0o755);
    mode("tmp/helper.sh", 0o755);
    mode("models/Qwen/Qwen-Image/config.json", 0o666);
    d
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    uid: u32,
    gid: u32,
    mode: u32,
    dir: bool,
    ctime: (i64, i64),
}

/// Every entry under `root`, symlinks not followed.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        let rel = p.strip_prefix(root).unwrap().to_owned();
        out.insert(
            rel,
            Entry {
                uid: m.uid(),
                gid: m.gid(),
                mode: m.mode() & 0o7777,
                dir: m.is_dir(),
                ctime: (m.ctime(), m.ctime_nsec()),
            },
        );
    }
    out
}

fn harden(d: &Deployment, args: &[&str]) -> (i32, String, String) {
    let _lock = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = d.warden(&[&["harden"], args].concat()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `/bin/sh -c script` as the account (its own uid and gid, no supplementary groups).
fn as_account(acct: &TestAccount, script: &str) -> std::process::Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .uid(acct.uid())
        .gid(acct.gid())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

/// What the policy wants for `rel`, or `None` for entries warden leaves alone.
fn expected(rel: &Path, dir: bool, before: &Entry, uid: u32, gid: u32) -> Option<(u32, u32, u32)> {
    if RO_TIERS.iter().any(|t| rel.starts_with(t)) {
        return Some((0, gid, if dir { 0o550 } else { 0o440 }));
    }
    if rel.starts_with("logs") {
        return Some((uid, gid, if dir { 0o750 } else { 0o640 }));
    }
    if rel.starts_with("tmp") || rel.starts_with("state") {
        let mode = if dir {
            0o700
        } else {
            0o600 | (before.mode & 0o100)
        };
        return Some((uid, gid, mode));
    }
    None
}

#[test]
fn harden_applies_the_policy_exactly_and_a_second_run_changes_nothing() {
    require_root();
    let acct = TestAccount::reserve("harden");
    let d = qwen(&acct.name, "");
    let before = snapshot(d.path());

    let (code, out, err) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("account: create system account {}", acct.name)),
        "{out}"
    );
    let (uid, gid) = (acct.uid(), acct.gid());
    let user = nix::unistd::User::from_name(&acct.name).unwrap().unwrap();
    assert_eq!(user.shell, PathBuf::from("/usr/sbin/nologin"));
    assert_eq!(user.dir, d.path().canonicalize().unwrap().join("state"));
    assert!(user.uid.as_raw() < 1000, "a system account");

    let after = snapshot(d.path());
    for (rel, now) in &after {
        let was = before.get(rel);
        match expected(rel, now.dir, was.unwrap_or(now), uid, gid) {
            Some(want) => assert_eq!(
                (now.uid, now.gid, now.mode),
                want,
                "{} is {}:{} {:04o}, the policy wants {}:{} {:04o}",
                rel.display(),
                now.uid,
                now.gid,
                now.mode,
                want.0,
                want.1,
                want.2
            ),
            None => {
                let was = was.unwrap_or_else(|| panic!("{} appeared", rel.display()));
                let key = |e: &Entry| (e.uid, e.gid, e.mode);
                assert_eq!(
                    key(was),
                    key(now),
                    "{} is outside every zone",
                    rel.display()
                );
                // Untouched, except the root, whose content grew a state directory.
                if !rel.as_os_str().is_empty() {
                    assert_eq!(was.ctime, now.ctime, "{} was written", rel.display());
                }
            }
        }
    }
    assert!(
        after[Path::new("state")].dir,
        "the state directory is created"
    );
    assert_eq!(after[Path::new("tmp/helper.sh")].mode, 0o700);
    assert_eq!(
        after[Path::new("models/Qwen/Qwen-Image/config.json")].mode,
        0o440
    );

    // A second run: nothing to do, nothing written.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, out, err) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("already hardened: 0 changes ("),
        "a second run must report no change:\n{out}"
    );
    assert!(!out.contains("account:"), "{out}");
    assert_eq!(
        snapshot(d.path()),
        after,
        "a second run changed something (ctime)"
    );
}

#[test]
fn the_account_reads_every_weight_but_cannot_change_a_read_only_tier() {
    require_root();
    let acct = TestAccount::reserve("limits");
    let d = qwen(&acct.name, "");
    std::fs::create_dir(d.path().join("models/Qwen/Qwen-Image/empty")).unwrap();
    let (code, out, err) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let root = d.path().canonicalize().unwrap();
    let p = |rel: &str| root.join(rel).display().to_string();

    for w in WEIGHTS {
        let r = as_account(&acct, &format!("cat '{}' > /dev/null", p(w)));
        assert!(r.status.success(), "the account cannot read {w}: {:?}", r);
    }
    // And it can write where it should.
    let r = as_account(
        &acct,
        &format!(
            "echo x > '{}/new' && echo x >> '{}'",
            p("tmp"),
            p("logs/gradio.log")
        ),
    );
    assert!(r.status.success(), "{r:?}");

    let file = p(WEIGHTS[0]);
    let dir = p("models/Qwen/Qwen-Image");
    let tier = p("models/Qwen");
    let lora = p(WEIGHTS[4]);
    let attempts = [
        format!("echo x > '{dir}/new.safetensors'"),
        format!("touch '{tier}/new'"),
        format!("mkdir '{dir}/sub'"),
        format!("ln -s /etc/passwd '{dir}/link'"),
        format!("echo x > '{file}'"),
        format!("echo x >> '{file}'"),
        format!(": > '{file}'"),
        format!("truncate -s 0 '{file}'"),
        format!("touch '{file}'"),
        format!("echo x >> '{lora}'"),
        format!("chmod 0644 '{file}'"),
        format!("chmod 0755 '{dir}'"),
        format!("chmod 0755 '{tier}'"),
        format!("chmod 0644 '{lora}'"),
        format!("mv '{file}' '{file}.moved'"),
        format!("mv '{dir}' '{tier}/moved'"),
        format!("mv '{lora}' '{}/stolen.bin'", p("tmp")),
        format!("rm -f '{file}'"),
        format!("rm -f '{lora}'"),
        format!("rmdir '{dir}/empty'"),
        format!("rm -rf '{tier}'"),
    ];
    for script in &attempts {
        let r = as_account(&acct, script);
        assert!(
            !r.status.success(),
            "the account could run `{script}` on a read-only tier"
        );
    }
    for w in WEIGHTS {
        let text = std::fs::read_to_string(root.join(w)).unwrap();
        assert_eq!(text, format!("weights of {w}"), "{w} changed");
        let m = std::fs::metadata(root.join(w)).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o440), "{w}");
    }
    assert_eq!(
        std::fs::read_dir(root.join("models/Qwen/Qwen-Image"))
            .unwrap()
            .count(),
        5
    );
}

#[test]
fn a_symlink_escaping_the_tree_is_not_followed_as_root() {
    require_root();
    let acct = TestAccount::reserve("symlink");
    let d = qwen(&acct.name, "");
    let outside_dir = tempfile::tempdir().unwrap();
    let outside = outside_dir.path().join("passwd-copy");
    std::fs::write(&outside, b"outside").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o664)).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    std::os::unix::fs::chown(
        &outside,
        Some(nobody.uid.as_raw()),
        Some(nobody.gid.as_raw()),
    )
    .unwrap();
    let before = std::fs::metadata(&outside).unwrap();
    std::os::unix::fs::symlink(
        &outside,
        d.path().join("models/Qwen/Qwen-Image/evil.safetensors"),
    )
    .unwrap();
    // A directory symlink too: the walk must not descend into it.
    std::os::unix::fs::symlink(outside_dir.path(), d.path().join("tmp/outdir")).unwrap();

    let (code, out, err) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let after = std::fs::metadata(&outside).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode() & 0o7777),
        (before.uid(), before.gid(), 0o664),
        "the file outside the deployment was changed through a symlink"
    );
    assert_eq!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec())
    );
    let dir = std::fs::metadata(outside_dir.path()).unwrap();
    assert_ne!(dir.uid(), acct.uid(), "the walk followed tmp/outdir");
    for link in ["models/Qwen/Qwen-Image/evil.safetensors", "tmp/outdir"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("warning: {link}: symlink to "))
                    && l.contains("outside the deployment")),
            "{link} not reported:\n{out}"
        );
    }
    // The links themselves are left as they were.
    let l = std::fs::symlink_metadata(d.path().join("models/Qwen/Qwen-Image/evil.safetensors"))
        .unwrap();
    assert_eq!(l.uid(), 0);
}

#[test]
fn hard_links_are_reported_and_never_handed_to_the_account() {
    require_root();
    let acct = TestAccount::reserve("hardlink");
    let d = qwen(&acct.name, "");
    d.write("app/shared.safetensors", b"shared")
        .write("app/config.yaml", b"secret: 1");
    std::fs::hard_link(
        d.path().join("app/shared.safetensors"),
        d.path().join("models/Qwen/Qwen-Image/linked.safetensors"),
    )
    .unwrap();
    std::fs::hard_link(
        d.path().join("app/config.yaml"),
        d.path().join("tmp/config.yaml"),
    )
    .unwrap();

    let (code, out, err) = harden(&d, &["--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    // The link in tmp was not applied: exit 1.
    assert_eq!(code, 1, "{out}\n{err}");
    let warnings = v["warnings"].as_array().unwrap();
    let find = |kind: &str, path: &str| {
        warnings
            .iter()
            .find(|w| w["kind"] == kind && w["path"].as_str().unwrap().ends_with(path))
            .unwrap_or_else(|| panic!("no {kind} warning for {path}: {warnings:?}"))
            .clone()
    };
    let w = find("hard-link", "models/Qwen/Qwen-Image/linked.safetensors");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("hard-linked (2 names)")
    );
    assert_eq!(w["blocking"], false);
    let w = find("hard-link-skipped", "tmp/config.yaml");
    assert_eq!(w["blocking"], true);
    let m = std::fs::metadata(d.path().join("app/config.yaml")).unwrap();
    assert_eq!(
        m.uid(),
        0,
        "a hard link in tmp handed a root file to the account"
    );
    assert_eq!(m.mode() & 0o7777, 0o644);
}

#[test]
fn supplementary_groups_are_added_and_must_exist() {
    require_root();
    let mut acct = TestAccount::reserve("groups");
    let gpu = acct.add_group("gpu");
    let d = qwen(&acct.name, &format!("groups = [\"{gpu}\"]\n"));
    let (code, out, err) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let id = Command::new("id")
        .args(["-nG", &acct.name])
        .output()
        .unwrap();
    let groups = String::from_utf8_lossy(&id.stdout).into_owned();
    assert!(groups.split_whitespace().any(|g| g == gpu), "{groups}");

    // Taken out of the group by hand: the next run puts it back, and changes nothing else.
    let st = Command::new("gpasswd")
        .args(["-d", &acct.name, &gpu])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let (code, out, _) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("usermod -a -G {gpu} {}", acct.name)),
        "{out}"
    );
    assert!(
        out.contains("hardened: 0 of 0 changes applied, 1 account action"),
        "{out}"
    );

    let d2 = qwen(&acct.name, "groups = [\"wdt-no-such-group\"]\n");
    let (code, out, err) = harden(&d2, &["--dry-run"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("the supplementary group wdt-no-such-group (service.groups) does not exist"),
        "{err}"
    );
}

#[test]
fn the_image_edit_example_is_hardened() {
    require_root();
    let acct = TestAccount::reserve("example");
    let d = Deployment::example("image-edit");
    make_traversable(d.path());
    let policy = std::fs::read_to_string(d.policy()).unwrap();
    let policy = policy
        .replace("\"aiusers\"", &format!("\"{}\"", acct.name))
        .replace("\"aiuser\"", &format!("\"{}\"", acct.name));
    assert!(policy.contains(&acct.name), "the example names its account");
    std::fs::write(d.policy(), policy).unwrap();

    let (code, out, err) = harden(&d, &["--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("models/Qwen  root:root 0755 -> root:"),
        "{out}"
    );
    let (code, out, err) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Every entry of a read-only tier has exactly the owner, group and modes the example's
    // policy gives that tier.
    let policy = warden::policy::Policy::load(&d.policy()).unwrap();
    let after = snapshot(d.path());
    let mut checked = 0;
    for (rel, e) in &after {
        let Some(tier) = policy.tier_for(&policy.root.join(rel)) else {
            continue;
        };
        if tier.access != warden::policy::Access::ReadOnly {
            continue;
        }
        let uid = nix::unistd::User::from_name(tier.owner.as_str())
            .unwrap()
            .unwrap()
            .uid
            .as_raw();
        let gid = nix::unistd::Group::from_name(tier.group.as_str())
            .unwrap()
            .unwrap()
            .gid
            .as_raw();
        let mode = if e.dir {
            tier.dir_mode.0
        } else {
            tier.file_mode.0
        };
        assert_eq!(
            (e.uid, e.gid, e.mode),
            (uid, gid, mode),
            "{}",
            rel.display()
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} entries in read-only tiers");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, out, _) = harden(&d, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already hardened: 0 changes"), "{out}");
    assert_eq!(snapshot(d.path()), after);
}
