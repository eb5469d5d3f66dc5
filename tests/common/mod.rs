//! Shared test builder: a temporary deployment tree and a `warden` command bound to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A deployment directory in a temp dir, removed when dropped.
pub struct Deployment {
    pub dir: tempfile::TempDir,
}

impl Deployment {
    /// An empty deployment directory.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("warden-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A copy of `examples/NAME` from the repository.
    pub fn example(name: &str) -> Self {
        let d = Self::empty();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        copy_tree(&src, d.path());
        d
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn policy(&self) -> PathBuf {
        self.path().join("warden.toml")
    }

    /// Writes a file (creating parents) relative to the deployment.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    /// `warden status --format json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self
            .warden(&["status", "--format", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("status JSON: {e}: {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// `warden -c DEPLOYMENT/warden.toml ARGS...`, with a clean environment.
    pub fn warden(&self, args: &[&str]) -> Command {
        let mut c = warden();
        c.arg("-c").arg(self.policy()).args(args);
        c
    }
}

/// The `warden` binary with no inherited policy variable.
pub fn warden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
    c.env_remove("WARDEN_POLICY").env("NO_COLOR", "1");
    c
}

/// Recursively copies a tree (files, dirs and symlinks as links).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Replaces the temp path in output so snapshots are stable.
pub fn redact_paths(out: &str, d: &Deployment) -> String {
    let real = d.path().canonicalize().unwrap();
    out.replace(&*real.to_string_lossy(), "[DEPLOY]")
        .replace(&*d.path().to_string_lossy(), "[DEPLOY]")
}

/// A system account (and its group of the same name) created for one test and deleted when
/// dropped, even if the test fails. Root only.
pub struct TestAccount {
    pub name: String,
    pub extra_groups: Vec<String>,
}

impl TestAccount {
    /// Creates `wdt-<tag>-<random>` with its own group, no home and no login shell.
    pub fn create(tag: &str) -> Self {
        let name = unique_name(tag);
        run_ok("groupadd", &["--system", &name]);
        run_ok(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--gid",
                &name,
                &name,
            ],
        );
        Self {
            name,
            extra_groups: Vec::new(),
        }
    }

    /// A name for an account that does not exist yet (for `warden harden` to create).
    pub fn reserve(tag: &str) -> Self {
        Self {
            name: unique_name(tag),
            extra_groups: Vec::new(),
        }
    }

    /// Creates an extra group, deleted with the account.
    pub fn add_group(&mut self, tag: &str) -> String {
        let g = unique_name(tag);
        run_ok("groupadd", &["--system", &g]);
        self.extra_groups.push(g.clone());
        g
    }

    pub fn uid(&self) -> u32 {
        nix::unistd::User::from_name(&self.name)
            .unwrap()
            .expect("account exists")
            .uid
            .as_raw()
    }

    pub fn gid(&self) -> u32 {
        nix::unistd::Group::from_name(&self.name)
            .unwrap()
            .expect("group exists")
            .gid
            .as_raw()
    }
}

impl Drop for TestAccount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .output();
        let _ = std::process::Command::new("groupdel")
            .arg(&self.name)
            .output();
        for g in &self.extra_groups {
            let _ = std::process::Command::new("groupdel").arg(g).output();
        }
    }
}

fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t: String = tag
        .chars()
        .filter(char::is_ascii_lowercase)
        .take(8)
        .collect();
    format!("wdt-{t}-{}-{n}", std::process::id() % 100_000)
}

/// Runs an account tool; retries while another process holds the /etc/passwd lock (exit 10).
fn run_ok(cmd: &str, args: &[&str]) {
    for _ in 0..50 {
        let out = std::process::Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        if out.status.success() {
            return;
        }
        if out.status.code() != Some(10) {
            panic!(
                "{cmd} {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{cmd} {args:?}: /etc/passwd stayed locked");
}

/// Lets every user traverse (not list) the deployment, as a real /srv/app would be.
pub fn make_traversable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Sets a path's permission bits.
pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Polls `f` every 50 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// The state letter of `/proc/PID/stat`, if the process exists.
fn proc_state(pid: i64) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit(')').next()?.trim_start().chars().next()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i64) -> bool {
    proc_state(pid).is_some_and(|c| c != 'Z')
}

/// Whether `pid` is a zombie (exited, not reaped).
pub fn is_zombie(pid: i64) -> bool {
    proc_state(pid) == Some('Z')
}

/// Processes below `pid` (from /proc/PID/task/*/children), nearest first.
pub fn descendants(pid: i64) -> Vec<i64> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", all[i])) {
            for t in tasks.flatten() {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<i64>().ok()),
                );
            }
        }
        i += 1;
    }
    all.remove(0);
    all
}
