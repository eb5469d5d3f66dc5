//! The supervisor as root: the account switch, the clean environment, single instance, stop,
//! restarts and refusals, observed from the running service itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::{
    Deployment, TestAccount, alive, descendants, is_zombie, make_traversable, set_mode, wait_for,
};

/// A deployment whose service is `svc.sh`, run as a fresh test account.
struct Svc {
    d: Deployment,
    acct: TestAccount,
}

impl Svc {
    fn new(tag: &str, script: &str, service_extra: &str) -> Self {
        Self::with_account(TestAccount::create(tag), script, service_extra)
    }

    fn with_account(acct: TestAccount, script: &str, service_extra: &str) -> Self {
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
                 [[tier]]\npath = \"models\"\n"
            ),
        );
        // Runs verify the weights against the manifest before every start.
        d.warden(&["seal"]).assert().success();
        Self { d, acct }
    }

    fn tmp(&self) -> PathBuf {
        self.d.path().canonicalize().unwrap().join("tmp")
    }

    fn status(&self) -> serde_json::Value {
        self.d.status_json()
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.d.warden(&["stop"]).output();
    }
}

const REPORT: &str = r#"out="$TMPDIR/report"
grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status > "$out.tmp"
echo "Umask: $(umask)" >> "$out.tmp"
env | sed 's/^/Env: /' >> "$out.tmp"
mv "$out.tmp" "$out""#;

fn parse_report(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut status = BTreeMap::new();
    let mut env = BTreeMap::new();
    for line in text.lines() {
        if let Some(kv) = line.strip_prefix("Env: ") {
            if let Some((k, v)) = kv.split_once('=') {
                env.insert(k.to_owned(), v.to_owned());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            status.insert(k.to_owned(), v.trim().to_owned());
        }
    }
    (status, env)
}

#[test]
fn service_runs_as_the_account_with_a_clean_environment() {
    let mut acct = TestAccount::create("run");
    let extra = acct.add_group("gpu");
    let s = Svc::with_account(acct, REPORT, &format!("groups = [\"{extra}\"]"));
    let out =
        s.d.warden(&["run"])
            .env("SECRET_TOKEN", "hunter2")
            .env("HF_TOKEN", "hf_abc")
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(s.tmp().join("report")).unwrap();
    let (st, env) = parse_report(&report);
    let (uid, gid) = (s.acct.uid(), s.acct.gid());
    let extra_gid = nix::unistd::Group::from_name(&extra)
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    assert_eq!(st["Uid"], format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(st["Gid"], format!("{gid}\t{gid}\t{gid}\t{gid}"));
    let groups: Vec<u32> = st["Groups"]
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    assert!(
        groups.contains(&gid) && groups.contains(&extra_gid),
        "groups {groups:?}"
    );
    for cap in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(st[cap], "0000000000000000", "{cap}");
    }
    assert_eq!(st["NoNewPrivs"], "1");
    assert_eq!(st["Umask"], "0077");
    assert!(
        !env.contains_key("SECRET_TOKEN") && !env.contains_key("HF_TOKEN"),
        "{env:?}"
    );
    let allowed = [
        "PATH", "LANG", "LANGUAGE", "TZ", "HOME", "USER", "LOGNAME", "PWD", "SHLVL", "_",
    ];
    for k in env.keys() {
        let from_warden = warden::supervise::env::DEFAULTS
            .iter()
            .any(|(d, _, _)| d == k);
        assert!(
            allowed.contains(&k.as_str()) || k.starts_with("LC_") || from_warden,
            "unexpected variable {k}"
        );
    }
    let tmp = s.tmp();
    let root = s.d.path().canonicalize().unwrap();
    assert_eq!(env["TMPDIR"], tmp.to_string_lossy());
    assert_eq!(env["TMP"], tmp.to_string_lossy());
    assert!(env["GRADIO_TEMP_DIR"].starts_with(&*tmp.to_string_lossy()));
    for k in [
        "HF_HOME",
        "XDG_CACHE_HOME",
        "MPLCONFIGDIR",
        "TRITON_CACHE_DIR",
    ] {
        assert!(
            env[k].starts_with(&*root.join("state").to_string_lossy()),
            "{k}={}",
            env[k]
        );
    }
    assert_eq!(env["GRADIO_ANALYTICS_ENABLED"], "False");
    assert_eq!(env["HF_HUB_DISABLE_TELEMETRY"], "1");
    // The private temp dir is the account's, 0700.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&tmp).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (uid, 0o700));
}

#[test]
fn up_twice_gives_one_service_and_stop_ends_it() {
    let s = Svc::new("up", "exec sleep 300", "");
    s.d.warden(&["up"]).assert().success();
    let first = s.status();
    assert_eq!(first["state"], "running", "{first}");
    let out = s.d.warden(&["up"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    let second = s.status();
    assert_eq!(first["supervisor_pid"], second["supervisor_pid"]);
    assert_eq!(first["service_pid"], second["service_pid"]);
    assert_eq!(second["user"], s.acct.name.as_str());
    let svc = first["service_pid"].as_i64().unwrap();
    s.d.warden(&["stop"]).assert().success();
    assert!(!alive(svc), "service still alive after stop");
    let out = s.d.warden(&["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = s.d.warden(&["stop"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn stale_pid_file_is_detected_and_its_process_left_alone() {
    let s = Svc::new("stale", "exec sleep 300", "");
    s.d.warden(&["up"]).assert().success();
    s.d.warden(&["stop"]).assert().success();
    // Another process now has the PID the file names (a different start time).
    let mut other = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let run_dir = PathBuf::from("/run/warden").join(&s.acct.name);
    std::fs::write(
        run_dir.join("warden.pid"),
        format!("{} 12345\n", other.id()),
    )
    .unwrap();
    let st = s.status();
    assert_eq!(st["state"], "stopped");
    assert!(
        st["warnings"][0]
            .as_str()
            .unwrap()
            .contains("stale PID file"),
        "{st}"
    );
    let out = s.d.warden(&["stop"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale PID file"));
    assert!(
        alive(i64::from(other.id())),
        "the unrelated process was killed"
    );
    assert!(!run_dir.join("warden.pid").exists());
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn stop_escalates_to_sigkill_when_sigterm_is_ignored() {
    let s = Svc::new("kill", "trap '' TERM\nwhile :; do sleep 0.1; done", "");
    s.d.warden(&["up"]).assert().success();
    let svc = s.status()["service_pid"].as_i64().unwrap();
    let t = Instant::now();
    s.d.warden(&["stop"]).assert().success();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "stopped in {took:?}, before the 2s grace period"
    );
    assert!(!alive(svc));
    let log = std::fs::read_to_string(
        PathBuf::from("/run/warden")
            .join(&s.acct.name)
            .join("supervisor.log"),
    )
    .unwrap();
    assert!(log.contains("sending SIGKILL"), "{log}");
}

#[test]
fn killing_warden_kills_the_service() {
    let s = Svc::new("death", "exec sleep 300", "");
    s.d.warden(&["up"]).assert().success();
    let st = s.status();
    let (sup, svc) = (
        st["supervisor_pid"].as_i64().unwrap(),
        st["service_pid"].as_i64().unwrap(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(
        "the service to die with warden",
        Duration::from_secs(5),
        || !alive(svc),
    );
}

#[test]
fn crash_loop_is_restarted_with_backoff_then_failed() {
    let s = Svc::new("crash", "echo crashing; exit 3", "");
    let policy = std::fs::read_to_string(s.d.policy()).unwrap().replace(
        "restart = { policy = \"never\" }",
        "restart = { policy = \"on-failure\", max = 3, within = \"1m\" }",
    );
    std::fs::write(s.d.policy(), policy).unwrap();
    let t = Instant::now();
    let out = s.d.warden(&["run", "--no-echo"]).output().unwrap();
    let took = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Backoff: 0.5s + 1s + 2s between the four starts.
    assert!(took >= Duration::from_millis(3500), "{took:?}");
    let st = s.status();
    assert_eq!(st["state"], "failed");
    assert_eq!(st["restarts"], 3);
    assert!(st["message"].as_str().unwrap().contains("gave up"));
    let log = std::fs::read_to_string(s.d.path().join("logs").join(format!("{}.log", s.acct.name)))
        .unwrap();
    assert_eq!(log.matches("crashing").count(), 4);
    s.d.warden(&["status"]).assert().code(1);
}

#[test]
fn public_tunnels_are_refused_naming_the_policy_key() {
    let s = Svc::new("share", "exit 0", "");
    let text = std::fs::read_to_string(s.d.policy()).unwrap();
    std::fs::write(
        s.d.policy(),
        text.replace("[\"./svc.sh\"]", "[\"./svc.sh\", \"--share\"]"),
    )
    .unwrap();
    let out = s.d.warden(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--share") && err.contains("service.allow-share"),
        "{err}"
    );

    std::fs::write(
        s.d.policy(),
        text.replace(
            "stop-timeout",
            "env = { GRADIO_SHARE = \"True\" }\nstop-timeout",
        ),
    )
    .unwrap();
    let out = s.d.warden(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GRADIO_SHARE") && err.contains("service.allow-share"),
        "{err}"
    );

    std::fs::write(
        s.d.policy(),
        text.replace(
            "[\"./svc.sh\"]",
            "[\"./svc.sh\", \"--server-name\", \"0.0.0.0\"]",
        ),
    )
    .unwrap();
    let out = s.d.warden(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("service.listen"));
}

#[test]
fn a_missing_account_is_a_clear_error() {
    let s = Svc::with_account(TestAccount::reserve("none"), "exit 0", "");
    let out = s.d.warden(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("warden harden"),
        "{err}"
    );
}

#[test]
fn as_pid_1_it_reaps_orphans_and_forwards_sigterm() {
    // Each subshell exits at once, orphaning its `sleep`, which the PID 1 must reap.
    let s = Svc::new(
        "pidone",
        "(sleep 0.3 &)\n(sleep 0.3 &)\n(sleep 0.3 &)\necho started\nexec sleep 300",
        "",
    );
    let mut unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_warden"))
        .arg("-c")
        .arg(s.d.policy())
        .args(["run", "--no-echo"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let outer = i64::from(unshare.id());
    let mut warden = 0;
    wait_for("warden to start as PID 1", Duration::from_secs(5), || {
        warden = descendants(outer).first().copied().unwrap_or(0);
        warden != 0
            && std::fs::read_to_string(format!("/proc/{warden}/status")).is_ok_and(|st| {
                st.lines()
                    .any(|l| l.starts_with("NSpid:") && l.split_whitespace().last() == Some("1"))
            })
    });
    let log = s.d.path().join("logs").join(format!("{}.log", s.acct.name));
    wait_for("the service to start", Duration::from_secs(15), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("started"))
    });
    wait_for(
        "the orphans to exit and be reaped",
        Duration::from_secs(5),
        || {
            let d = descendants(warden);
            d.len() == 1 && !d.iter().any(|p| is_zombie(*p))
        },
    );
    let pid1 = nix::unistd::Pid::from_raw(warden as i32);
    nix::sys::signal::kill(pid1, nix::sys::signal::Signal::SIGTERM).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = unshare.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = nix::sys::signal::kill(pid1, nix::sys::signal::Signal::SIGKILL);
            let _ = unshare.wait();
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(unshare.stderr.as_mut().unwrap(), &mut err);
            panic!("warden did not exit within 20s of SIGTERM; its messages:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(unshare.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("running as PID 1") && err.contains("SIGTERM received"),
        "{err}"
    );
}

#[test]
fn status_warns_when_the_service_listens_where_the_policy_does_not_allow() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The bind is hidden in code, so preflight cannot see it; status does.
    let script = format!(
        "exec /usr/bin/python3 -c \"import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', {port}))\ns.listen()\ntime.sleep(300)\""
    );
    let s = Svc::new("listen", &script, "listen = [\"127.0.0.1:7860\"]");
    // Landlock (ABI 4+) would refuse the bind itself; status must catch it without the sandbox
    // too, e.g. on an older kernel.
    let mut policy = std::fs::read_to_string(s.d.policy()).unwrap();
    policy.push_str("\n[sandbox]\nlandlock = \"off\"\n");
    std::fs::write(s.d.policy(), policy).unwrap();
    s.d.warden(&["up"]).assert().success();
    let mut st = s.status();
    wait_for("the socket to show up", Duration::from_secs(5), || {
        st = s.status();
        st["listening"].as_array().is_some_and(|l| !l.is_empty())
    });
    assert_eq!(
        st["listening"],
        serde_json::json!([format!("0.0.0.0:{port}")])
    );
    let w = st["warnings"][0].as_str().unwrap();
    assert!(
        w.contains(&format!("0.0.0.0:{port}"))
            && w.contains("service.listen")
            && w.contains("every network interface"),
        "{w}"
    );
    let out = s.d.warden(&["status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("which service.listen does not allow"));
}

#[test]
fn weights_changed_while_running_stop_the_next_restart() {
    let s = Svc::new("reverify", "echo crashing\nsleep 1\nexit 3", "");
    let policy = std::fs::read_to_string(s.d.policy()).unwrap().replace(
        "restart = { policy = \"never\" }",
        "restart = { policy = \"on-failure\", max = 5, within = \"1m\" }",
    );
    std::fs::write(s.d.policy(), policy).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("-c")
        .arg(s.d.policy())
        .args(["run", "--no-echo"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = s.d.path().join("logs").join(format!("{}.log", s.acct.name));
    wait_for("the first start", Duration::from_secs(15), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("crashing"))
    });
    // Someone swaps the weights while the service runs.
    std::fs::write(
        s.d.path().join("models/base/model.safetensors"),
        b"swapped!",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not restarting"), "{err}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches("crashing").count(), 1, "{log}");
    assert_eq!(s.status()["state"], "failed");
}
