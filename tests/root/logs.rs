//! The log pipeline under `warden run` as root: no line lost or split across ~100 rotations,
//! files owned by the account with mode 0640, and a full disk that does not stop the service.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Deployment, TestAccount, make_traversable};

const LINES: u64 = 400_000;
const BURSTS: u64 = 100;

/// A deployment whose service runs `script`, as a fresh account, with `[logs]` settings.
fn deployment(acct: &TestAccount, script: &str, logs: &str) -> Deployment {
    let d = Deployment::empty();
    make_traversable(d.path());
    d.write("models/base/model.safetensors", b"weights");
    d.write("svc.sh", format!("#!/bin/sh\n{script}\n"));
    std::fs::set_permissions(
        d.path().join("svc.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let name = &acct.name;
    d.write(
        "warden.toml",
        format!(
            "[service]\nname = \"{name}\"\ncommand = [\"./svc.sh\"]\nuser = \"{name}\"\n\
             stop-timeout = \"2s\"\nrestart = {{ policy = \"never\" }}\n\n\
             [[tier]]\npath = \"models\"\n\n[logs]\n{logs}\n"
        ),
    );
    d
}

#[test]
fn run_loses_no_line_across_100_rotations_and_files_belong_to_the_account() {
    let acct = TestAccount::create("logs");
    let per = LINES / BURSTS;
    let script = format!(
        "i=0; while [ $i -lt {BURSTS} ]; do \
           awk -v s=$((i*{per}+1)) -v e=$((i*{per}+{per})) \
             'BEGIN {{ for (n = s; n <= e; n++) printf \"line %07d of the no-loss test\\n\", n }}'; \
           i=$((i+1)); done"
    );
    // About 22 MB of time-stamped lines: a rotation every ~210 KiB is about 100 of them.
    let d = deployment(
        &acct,
        &script,
        "level = \"trace\"\nrotate = { every = \"never\", size = \"210KiB\", keep = 1000 }",
    );
    let t = Instant::now();
    let out = d.warden(&["run", "--no-echo"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = d.path().join("logs");
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{}.log", acct.name))
        })
        .collect();
    assert!(files.len() > 100, "{} files", files.len());
    assert!(
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "gz"))
            .count()
            > 90
    );
    for f in &files {
        let m = std::fs::symlink_metadata(f).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (acct.uid(), acct.gid(), 0o640),
            "{}",
            f.display()
        );
    }
    // Read back through `warden logs`, rotated and compressed files included.
    let out = d.warden(&["logs"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut n = 0u64;
    for line in text.lines() {
        n += 1;
        let want = format!("line {n:07} of the no-loss test");
        assert!(line.len() > 25 && line[25..] == want, "line {n}: {line:?}");
    }
    assert_eq!(n, LINES);
    assert!(t.elapsed() < Duration::from_secs(50), "{:?}", t.elapsed());
}

/// Unmounts the tmpfs even when the test fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_drops_and_counts_lines_but_the_service_goes_on() {
    let acct = TestAccount::create("full");
    let d = deployment(
        &acct,
        "seq 1 200000 | sed 's/^/filler line /'; echo done > \"$TMPDIR/ran\"; sleep 1.5",
        "rotate = { every = \"never\" }",
    );
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
        .arg(&logs)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    let _m = Mount(logs.clone());
    let out = d.warden(&["run", "--no-echo"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("dropping log lines"), "{stderr}");
    assert!(
        d.path().join("tmp/ran").exists(),
        "the service ran to its end"
    );
    let out = d.warden(&["status", "--format", "json"]).output().unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dropped = st["log_dropped_bytes"].as_u64().unwrap();
    assert!(dropped > 1_000_000, "{st}");
    // What did fit is whole lines.
    let kept = std::fs::read_to_string(logs.join(format!("{}.log", acct.name))).unwrap();
    assert!(kept.ends_with('\n'));
    assert!(kept.lines().all(|l| l[25..].starts_with("filler line ")));
}
