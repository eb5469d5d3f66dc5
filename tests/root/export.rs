//! Container mode: `warden run` as PID 1 of a new PID namespace without root, as the
//! container runtime starts it (`runAsNonRoot`, a numeric uid): no account switch, orphans
//! reaped, SIGTERM forwarded to the service, its output on stdout after redaction.

use std::time::{Duration, Instant};

use crate::common::{Deployment, TestAccount, descendants, make_traversable, wait_for};

/// The direct children of `pid`.
fn children(pid: i64) -> Vec<i64> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(
                kids.split_whitespace()
                    .filter_map(|k| k.parse::<i64>().ok()),
            );
        }
    }
    out
}

fn state(pid: i64) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.trim_start().chars().next()
}

fn status_field(pid: i64, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_owned()))
}

fn chown_tree(p: &std::path::Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[test]
fn as_pid_1_without_root_it_reaps_orphans_forwards_sigterm_and_logs_redacted_to_stdout() {
    let acct = TestAccount::create("ctr");
    let (uid, gid) = (acct.uid(), acct.gid());
    let d = Deployment::empty();
    make_traversable(d.path());
    d.write("models/base/model.safetensors", b"weights");
    // Three subshells exit at once, orphaning their `sleep`s, which PID 1 must reap. The
    // service records the SIGTERM it gets through warden.
    d.write(
        "svc.sh",
        "#!/bin/sh\n\
         trap 'echo TERM > \"$TMPDIR/got-sigterm\"; exit 0' TERM\n\
         (sleep 1 &)\n(sleep 1 &)\n(sleep 1 &)\n\
         echo \"started, HF_TOKEN=hf_aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH\"\n\
         sleep 300 &\n\
         wait\n",
    );
    d.write(
        "warden.toml",
        format!(
            "[service]\nname = \"ctr\"\ncommand = [\"./svc.sh\"]\nuser = \"{}\"\n\
             stop-timeout = \"5s\"\nrestart = {{ policy = \"never\" }}\n\
             [[tier]]\npath = \"models\"\n\
             [integrity]\nverify = \"off\"\nscan = false\n",
            acct.name
        ),
    );
    // The image's copy of warden: anywhere the account can execute it.
    let bin = d.path().join("warden");
    std::fs::copy(env!("CARGO_BIN_EXE_warden"), &bin).unwrap();
    chown_tree(d.path(), uid, gid);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        d.path().join("svc.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "setpriv"])
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(&bin)
        .arg("-c")
        .arg(d.policy())
        .arg("run")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let outer = i64::from(unshare.id());
    let mut warden = 0;
    wait_for("warden to start as PID 1", Duration::from_secs(10), || {
        warden = descendants(outer).first().copied().unwrap_or(0);
        warden != 0
            && std::fs::read_link(format!("/proc/{warden}/exe")).is_ok_and(|e| e == bin)
            && status_field(warden, "NSpid:")
                .is_some_and(|v| v.split_whitespace().last() == Some("1"))
    });
    // Not root: the runtime switched to the numeric account before warden started.
    let uids = status_field(warden, "Uid:").unwrap();
    assert_eq!(
        uids.split_whitespace().collect::<Vec<_>>(),
        vec![uid.to_string(); 4],
        "warden's uids"
    );
    assert_eq!(status_field(warden, "CapEff:").unwrap(), "0000000000000000");
    wait_for(
        "the orphans to be re-parented to warden",
        Duration::from_secs(10),
        || children(warden).len() == 4,
    );
    wait_for(
        "the service to start and the orphans to exit and be reaped",
        Duration::from_secs(10),
        || {
            let below = descendants(warden);
            // The service's shell and its `sleep 300`, nothing else, no zombie.
            below.len() == 2 && below.iter().all(|p| state(*p).is_some_and(|s| s != 'Z'))
        },
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(warden as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = unshare.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "warden did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(unshare.stderr.as_mut().unwrap(), &mut err).unwrap();
    // The service's output reaches stdout (the cluster's log collector) after redaction.
    let mut out = String::new();
    std::io::Read::read_to_string(unshare.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("started, HF_TOKEN=[REDACTED:hf-token]") && !out.contains("hf_aBcD"),
        "stdout:\n{out}"
    );
    assert!(status.success(), "{err}");
    assert!(
        !err.contains("did not stop within"),
        "the service and its group did not end on SIGTERM:\n{err}"
    );
    for needle in [
        "not started as root",
        "without an account switch",
        "running as PID 1",
        "SIGTERM received",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    let marker = d.path().join("tmp").join("got-sigterm");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default().trim(),
        "TERM",
        "the service did not get SIGTERM:\n{err}"
    );
}
