//! `warden harden` as any user: the dry run, JSON output, symlinks that escape the tree, and
//! what an ordinary user can and cannot apply. CI runs these as root, so every test is correct
//! either way (the rootless test drops to `nobody` when it runs as root).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::common::{Deployment, set_mode};

fn policy(user: &str, group: &str) -> String {
    format!(
        "[service]\nname = \"svc\"\ncommand = [\"python3\", \"app.py\"]\nuser = \"{user}\"\n\
         group = \"{group}\"\n\n[[tier]]\npath = \"models\"\n"
    )
}

/// A small deployment with known modes: a tier `models` and the app beside it.
fn deployment(user: &str, group: &str) -> Deployment {
    let d = Deployment::empty();
    d.write("models/base/model.safetensors", b"weights")
        .write("models/base/config.json", b"{}")
        .write("app.py", b"print('hi')\n")
        .write("warden.toml", policy(user, group));
    for f in [
        "models/base/model.safetensors",
        "models/base/config.json",
        "app.py",
    ] {
        set_mode(&d.path().join(f), 0o644);
    }
    for dir in ["models", "models/base"] {
        set_mode(&d.path().join(dir), 0o755);
    }
    d
}

/// Gives the owner write access back to every directory when dropped, so that the temp
/// deployment can be removed after a run without root made its tier read-only.
struct Unlock<'a>(&'a Path);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        let mut stack = vec![self.0.to_owned()];
        while let Some(p) = stack.pop() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
}

/// Owner, group and mode of every entry under `root`, symlinks not followed.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.insert(p.clone(), (m.uid(), m.gid(), m.mode() & 0o7777));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

fn me() -> (String, String) {
    let names = warden::perms::Names::default();
    (
        names.user(rustix::process::geteuid().as_raw()),
        names.group(rustix::process::getegid().as_raw()),
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let d = deployment("wdt-never-created", "wdt-never-created");
    let before = snapshot(d.path());
    let out = d.warden(&["harden", "--dry-run"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (user, group) = me();
    for line in [
        format!(
            "models/base/model.safetensors  {user}:{group} 0644 -> root:wdt-never-created 0440"
        ),
        format!("models/base  {user}:{group} 0755 -> root:wdt-never-created 0550"),
        "tmp  (new directory) -> wdt-never-created:wdt-never-created 0700".to_owned(),
        "logs  (new directory) -> wdt-never-created:wdt-never-created 0750".to_owned(),
        "account: create group wdt-never-created: groupadd --system wdt-never-created".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&line)),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(!text.contains("app.py"), "the app is left alone:\n{text}");
    assert_eq!(snapshot(d.path()), before, "a dry run changed the tree");
    assert!(!d.path().join("tmp").exists());
    assert!(
        nix::unistd::User::from_name("wdt-never-created")
            .unwrap()
            .is_none()
    );
}

#[test]
fn json_plan_parses_and_lists_every_change() {
    let d = deployment("wdt-never-created", "wdt-never-created");
    for i in 0..30 {
        d.write(&format!("models/many/f{i:02}.bin"), b"x");
    }
    let out = d
        .warden(&["harden", "--dry-run", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["dry_run"], true);
    let changes = v["changes"].as_array().unwrap();
    let model = changes
        .iter()
        .find(|c| {
            c["path"]
                .as_str()
                .unwrap()
                .ends_with("models/base/model.safetensors")
        })
        .expect("the model file is in the plan");
    assert_eq!(model["before"]["mode"], "0644");
    assert_eq!(model["after"]["mode"], "0440");
    assert_eq!(model["after"]["owner"], "root");
    assert_eq!(model["after"]["group"], "wdt-never-created");
    assert_eq!(model["status"], "planned");
    // 3 tier dirs, 32 files, and the three private directories to create.
    assert_eq!(changes.len(), 3 + 32 + 3);
    assert_eq!(v["summary"]["changes"], 38);
    assert_eq!(v["account"]["actions"][1]["action"], "create-user");

    // Text output summarizes a large plan unless -v is given.
    let short = stdout(&d.warden(&["harden", "--dry-run"]).output().unwrap());
    assert!(
        short.contains("... and 15 more changes under models (-v lists every change)"),
        "{short}"
    );
    let long = stdout(&d.warden(&["harden", "--dry-run", "-v"]).output().unwrap());
    assert_eq!(
        long.lines().filter(|l| l.contains(" -> ")).count(),
        38,
        "{long}"
    );
}

/// The primary group of `nobody`, whatever the distribution calls it.
fn nobody() -> (u32, u32, String) {
    let u = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody account");
    let g = warden::perms::Names::default().group(u.gid.as_raw());
    (u.uid.as_raw(), u.gid.as_raw(), g)
}

#[test]
fn a_symlink_escaping_the_tree_is_not_followed() {
    let (nobody_uid, _, nogroup) = nobody();
    // An existing account, so that a run as root creates none.
    let d = deployment("nobody", &nogroup);
    let _unlock = Unlock(d.path());
    // A private deployment root: the account cannot enter it, which is reported.
    set_mode(d.path(), 0o700);
    let outside_dir = tempfile::tempdir().unwrap();
    let outside = outside_dir.path().join("secret.txt");
    std::fs::write(&outside, b"not a model").unwrap();
    set_mode(&outside, 0o644);
    let before = std::fs::metadata(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, d.path().join("models/base/escape.safetensors")).unwrap();
    std::os::unix::fs::symlink("../../../elsewhere", d.path().join("models/base/up")).unwrap();
    std::os::unix::fs::symlink("model.safetensors", d.path().join("models/base/alias")).unwrap();

    let out = d.warden(&["harden"]).output().unwrap();
    let text = stdout(&out);
    let root = rustix::process::geteuid().is_root();
    // Without root the chown to root is left to do: exit 1.
    assert_eq!(out.status.code(), Some(if root { 0 } else { 1 }), "{text}");

    let after = std::fs::metadata(&outside).unwrap();
    assert_eq!(
        after.mode() & 0o7777,
        0o644,
        "the outside file's mode changed"
    );
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(after.ctime_nsec(), before.ctime_nsec());
    for link in ["escape.safetensors", "up"] {
        assert!(
            text.lines().any(|l| l.starts_with("warning: models/base/")
                && l.contains(link)
                && l.contains("outside the deployment")),
            "{link} not reported:\n{text}"
        );
    }
    // The deployment root is a private temp dir (0700): the account could not reach its tiers.
    let root = d.path().canonicalize().unwrap();
    let warned = text.contains(&format!(
        "warning: {}: the service account nobody cannot enter this directory",
        root.display()
    ));
    // (Unless these tests run as nobody, the owner of the root.)
    assert_eq!(
        warned,
        rustix::process::geteuid().as_raw() != nobody_uid,
        "{text}"
    );
    assert!(
        !text.contains("alias:"),
        "a link inside the tree is fine:\n{text}"
    );
    // The weights themselves were hardened (at least their mode).
    let m = std::fs::metadata(d.path().join("models/base/model.safetensors")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o440);
}

#[test]
fn an_ordinary_user_applies_what_it_can_and_lists_what_needs_root() {
    let d = deployment("wdt-never-created", "wdt-never-created");
    let _unlock = Unlock(d.path());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.env_remove("WARDEN_POLICY")
        .arg("-c")
        .arg(d.policy())
        .arg("harden");
    if rustix::process::geteuid().is_root() {
        // Act as an ordinary user: hand the deployment to nobody and run as nobody.
        let (uid, gid, _) = nobody();
        let status = std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(d.path())
            .status()
            .unwrap();
        assert!(status.success());
        cmd.uid(uid).gid(gid);
    }
    let owner_before = std::fs::metadata(d.path().join("models/base/model.safetensors"))
        .unwrap()
        .uid();
    let out = cmd.output().unwrap();
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 2 account actions, 2 dirs + 2 files to give to root, and 3 private dirs to give to the
    // account.
    assert!(
        text.contains("9 changes need root: run `sudo warden harden`"),
        "{text}"
    );
    assert!(text.contains("(mode applied; owner needs root)"), "{text}");
    assert!(text.contains("(needs root)"), "{text}");
    let m = std::fs::metadata(d.path().join("models/base/model.safetensors")).unwrap();
    assert_eq!(
        m.mode() & 0o7777,
        0o440,
        "the mode of an own file is applied"
    );
    assert_eq!(
        m.uid(),
        owner_before,
        "the owner cannot change without root"
    );
    assert_eq!(
        std::fs::metadata(d.path().join("app.py")).unwrap().mode() & 0o7777,
        0o644
    );
    // The private directories exist now, with their modes.
    let tmp = std::fs::metadata(d.path().join("tmp")).unwrap();
    assert!(tmp.is_dir());
    assert_eq!(tmp.mode() & 0o7777, 0o700);
}

#[test]
fn a_tier_that_is_a_symlink_is_refused_before_anything_changes() {
    let d = Deployment::empty();
    d.write("real-models/model.safetensors", b"weights").write(
        "warden.toml",
        policy("wdt-never-created", "wdt-never-created"),
    );
    set_mode(&d.path().join("real-models/model.safetensors"), 0o644);
    std::os::unix::fs::symlink("real-models", d.path().join("models")).unwrap();
    let before = snapshot(d.path());
    let out = d.warden(&["harden"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("models is a symlink: warden never follows symlinks"),
        "{err}"
    );
    assert_eq!(
        snapshot(d.path()),
        before,
        "something changed before the refusal"
    );
    assert!(!d.path().join("tmp").exists());
}

#[test]
fn a_large_directory_is_walked_completely() {
    let d = deployment("wdt-never-created", "wdt-never-created");
    let big = d.path().join("models/big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..5000 {
        std::fs::write(big.join(format!("shard-{i:05}.safetensors")), b"").unwrap();
    }
    let out = d
        .warden(&["harden", "--dry-run", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // models, models/base, models/big, 2 + 5000 files, 3 private directories to create.
    assert_eq!(v["changes"].as_array().unwrap().len(), 3 + 5002 + 3);
    assert_eq!(v["entries_checked"], 3 + 5002 + 3);
}

#[test]
fn special_files_are_reported_and_left_alone() {
    let d = deployment("wdt-never-created", "wdt-never-created");
    let fifo = d.path().join("models/base/pipe");
    let st = std::process::Command::new("mkfifo")
        .args(["-m", "0666"])
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let out = d.warden(&["harden", "--dry-run"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(
            "warning: models/base/pipe: device, fifo or socket in models: left unchanged"
        ),
        "{text}"
    );
    assert!(
        !text.contains("models/base/pipe  "),
        "a fifo is never planned:\n{text}"
    );
    let m = std::fs::symlink_metadata(&fifo).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o666);
}
