//! The sandbox as root: the service runs under Landlock as its account, observed from the
//! service itself (a shell script that tries things and writes what happened), and the status
//! warden reports. Everything is applied in the service's process, never in the test harness.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Deployment, TestAccount, make_traversable, set_mode};

/// A deployment whose service is `svc.sh`, run as a fresh account with the given `[sandbox]`.
pub struct Sandboxed {
    pub d: Deployment,
    pub acct: TestAccount,
}

impl Sandboxed {
    pub fn new(tag: &str, script: &str, service_extra: &str, sandbox: &str) -> Self {
        let acct = TestAccount::create(tag);
        let d = Deployment::empty();
        make_traversable(d.path());
        d.write("models/base/model.safetensors", b"weights");
        d.write("svc.sh", format!("#!/bin/sh\n{script}\n"));
        set_mode(&d.path().join("svc.sh"), 0o755);
        let name = &acct.name;
        d.write(
            "warden.toml",
            format!(
                "[service]\nname = \"{name}\"\ncommand = [\"./svc.sh\"]\nuser = \"{name}\"\n\
                 stop-timeout = \"2s\"\nrestart = {{ policy = \"never\" }}\n{service_extra}\n\
                 [[tier]]\npath = \"models\"\n\n[sandbox]\n{sandbox}\n\n\
                 [integrity]\nverify = \"off\"\nscan = false\n"
            ),
        );
        make_traversable(&d.path().join("models"));
        make_traversable(&d.path().join("models/base"));
        Self { d, acct }
    }

    pub fn root(&self) -> PathBuf {
        self.d.path().canonicalize().unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let out = self
            .d
            .warden(&["status", "--format", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits for `$TMPDIR/report` (written by the service with `mv`, so complete).
    fn report(&self) -> String {
        let p = self.root().join("tmp/report");
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(s) = std::fs::read_to_string(&p) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no report from the service at {}", p.display());
    }
}

impl Drop for Sandboxed {
    fn drop(&mut self) {
        let _ = self.d.warden(&["stop"]).output();
    }
}

/// Tries each action and records `name ok` or `name denied`.
const TRIES: &str = r#"r="$TMPDIR/report.tmp"
try() { name=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "$name ok" >> "$r"; else echo "$name denied" >> "$r"; fi; }
try tmp-write sh -c 'echo x > "$TMPDIR/f" && cat "$TMPDIR/f"'
try state-write sh -c 'echo x > "$HOME/f"'
try weight-read cat models/base/model.safetensors
try weight-write sh -c 'echo x >> models/base/model.safetensors'
try weight-truncate truncate -s 0 models/base/model.safetensors
try app-write sh -c 'echo x > ./new'
try logs-read sh -c 'cat logs/*.log'
try shared-tmp sh -c 'echo x > /tmp/wdt-sandbox-$$'
try shadow cat /etc/shadow
try passwd-read cat /etc/passwd
try tmp-exec sh -c 'cp /bin/true "$TMPDIR/t" && "$TMPDIR/t"'
try signal-warden kill -0 $PPID
grep -E '^Max (core file size|open files|processes)' /proc/self/limits >> "$r"
grep NoNewPrivs /proc/self/status >> "$r"
mv "$r" "$TMPDIR/report"
exec sleep 300"#;

fn has(report: &str, line: &str) -> bool {
    report.lines().any(|l| l.trim() == line)
}

#[test]
fn the_service_runs_in_the_sandbox_and_status_says_so() {
    let s = Sandboxed::new("sbx", TRIES, "", "nproc = 300\nnofile = 2048");
    // The weight is even writable by its mode: Landlock holds the line.
    let out = s.d.warden(&["harden"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    set_mode(&s.root().join("models/base/model.safetensors"), 0o666);
    let out = s.d.warden(&["up"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = s.report();
    for ok in [
        "tmp-write ok",
        "state-write ok",
        "weight-read ok",
        "passwd-read ok",
    ] {
        assert!(has(&r, ok), "{ok}:\n{r}");
    }
    for denied in [
        "weight-write denied",
        "weight-truncate denied",
        "app-write denied",
        "logs-read denied",
        "shared-tmp denied",
        "shadow denied",
        "tmp-exec denied",
        "signal-warden denied",
    ] {
        assert!(has(&r, denied), "{denied}:\n{r}");
    }
    let limit = |name: &str| {
        r.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{name}:\n{r}"))
    };
    assert_eq!(&limit("Max core file size")[4..6], ["0", "0"], "{r}");
    assert_eq!(&limit("Max open files")[3..5], ["2048", "2048"], "{r}");
    assert_eq!(&limit("Max processes")[2..4], ["300", "300"], "{r}");
    assert!(
        has(&r, "NoNewPrivs:\t1") || r.contains("NoNewPrivs:\t1"),
        "{r}"
    );
    assert_eq!(
        std::fs::read(s.root().join("models/base/model.safetensors")).unwrap(),
        b"weights"
    );

    let st = s.status();
    let sb = &st["sandbox"];
    let abi = warden::sandbox::support()
        .abi
        .expect("Landlock on the test machine");
    assert_eq!(
        sb["landlock"],
        if abi >= 6 { "full" } else { "partial" },
        "{st}"
    );
    assert_eq!(sb["kernel_abi"], abi, "{st}");
    assert_eq!(sb["requested_abi"], warden::sandbox::TESTED_ABI);
    assert_eq!(sb["limits"]["nproc"], 300);
    assert_eq!(sb["limits"]["no_new_privs"], true);
    let enforced: Vec<&str> = sb["enforced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in ["filesystem", "truncate", "tcp-bind", "signal-scope"] {
        assert!(abi < 6 || enforced.contains(&f), "{f}: {st}");
    }
    let text = s.d.warden(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("sandbox:   landlock ABI") && text.contains("core dumps off"),
        "{text}"
    );
    // The supervisor said it too.
    let sup = std::fs::read_to_string(
        Path::new(warden::supervise::instance::RUN_DIR)
            .join(&s.acct.name)
            .join("supervisor.log"),
    )
    .unwrap();
    assert!(sup.contains("warden: sandbox: landlock ABI"), "{sup}");
}

#[test]
fn binding_is_limited_to_the_policy_ports() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let other = port.wrapping_add(1).max(1024);
    let script = format!(
        r#"r="$TMPDIR/report.tmp"
python3 - >> "$r" 2>&1 <<EOF
import socket
for p in ({port}, {other}):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p, "ok")
    except OSError as e:
        print(p, "denied", e.errno)
EOF
mv "$r" "$TMPDIR/report""#
    );
    let s = Sandboxed::new(
        "bind",
        &script,
        &format!("listen = [\"127.0.0.1:{port}\"]"),
        "landlock = \"required\"",
    );
    let out = s.d.warden(&["run"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = s.report();
    assert!(has(&r, &format!("{port} ok")), "{r}");
    assert!(has(&r, &format!("{other} denied 13")), "{r}");
}

#[test]
fn off_reports_everything_not_enforced() {
    let s = Sandboxed::new(
        "off",
        "echo x > ./new && echo app-write ok > \"$TMPDIR/report\"; true",
        "",
        "landlock = \"off\"",
    );
    let out = s.d.warden(&["run"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warden: sandbox: landlock off") && err.contains("NOT enforced: filesystem"),
        "{err}"
    );
}

#[test]
fn a_missing_sandbox_path_refuses_the_start() {
    let s = Sandboxed::new(
        "miss",
        "true",
        "",
        "landlock = \"required\"\nread = [\"/nonexistent/warden-venv\"]",
    );
    let out = s.d.warden(&["run"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sandbox.read") && err.contains("/nonexistent/warden-venv"),
        "{err}"
    );
}

#[test]
fn paths_this_host_lacks_are_reported_not_silently_dropped() {
    // No GPU here: the nvidia preset's devices do not exist. The service still starts (the
    // rules only allow), and the status lists what was left out.
    let s = Sandboxed::new(
        "gpu",
        "echo ok > \"$TMPDIR/report\"; exec sleep 300",
        "",
        "devices = [\"nvidia\"]",
    );
    let out = s.d.warden(&["up"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.report().trim(), "ok");
    let st = s.status();
    let skipped: Vec<&str> = st["sandbox"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    if !Path::new("/dev/nvidiactl").exists() {
        assert!(skipped.contains(&"/dev/nvidiactl"), "{st}");
    }
    if !Path::new("/proc/driver/nvidia").exists() {
        assert!(skipped.contains(&"/proc/driver/nvidia"), "{st}");
    }
}
