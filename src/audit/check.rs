//! `warden check`: the production-readiness audit. Reads the policy, the account database and
//! the tree (never following a symlink), changes nothing, and reports each hole with an id, a
//! severity, what was seen and how to fix it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::account::{self, Accounts};
use crate::perms::zone::ZoneKind;
use crate::perms::{self, Names, Principal, Zones};
use crate::policy::schema::Every;
use crate::policy::{Enforcement, Policy};
use crate::sandbox;
use crate::supervise::{PreStart, control, env, preflight};
use crate::sys::fs::{Kind, Meta};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One kind of hole `check` looks for.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
}

/// Every rule, in report order.
pub const RULES: &[Rule] = &[
    rule("service.root", "The service runs as root", Severity::High),
    rule(
        "account.missing",
        "The service account does not exist",
        Severity::Medium,
    ),
    rule(
        "account.login-shell",
        "The service account has a login shell",
        Severity::Medium,
    ),
    rule(
        "tier.owned-by-account",
        "A read-only tier is owned by the service account",
        Severity::High,
    ),
    rule(
        "tier.owner",
        "A read-only tier has another owner or group than the policy says",
        Severity::Medium,
    ),
    rule(
        "tier.mode",
        "A read-only tier has other modes than the policy says",
        Severity::Medium,
    ),
    rule(
        "tree.world-writable",
        "Something in the deployment is world-writable",
        Severity::High,
    ),
    rule(
        "tree.setuid",
        "A setuid or setgid file is in the deployment",
        Severity::High,
    ),
    rule(
        "path.ancestor-owner",
        "A directory above the deployment is owned by another account",
        Severity::High,
    ),
    rule(
        "path.ancestor-writable",
        "A directory above the deployment is writable by others",
        Severity::High,
    ),
    rule(
        "path.untraversable",
        "The service account cannot reach the deployment",
        Severity::High,
    ),
    rule(
        "logs.dir-mode",
        "The log directory is too open or not the service's",
        Severity::Medium,
    ),
    rule(
        "logs.file-mode",
        "A log file is readable beyond the policy's file mode",
        Severity::High,
    ),
    rule(
        "logs.stray",
        "A log file outside the log directory, readable by other accounts",
        Severity::High,
    ),
    rule("logs.rotation", "Logs are never rotated", Severity::Medium),
    rule("logs.redaction", "Log redaction is off", Severity::Medium),
    rule(
        "tmp.mode",
        "The private temp directory is not 0700 and the service's",
        Severity::High,
    ),
    rule(
        "state.mode",
        "The state directory is not 0700 and the service's",
        Severity::Medium,
    ),
    rule(
        "service.share",
        "A public tunnel (--share, GRADIO_SHARE) is asked for or allowed",
        Severity::High,
    ),
    rule(
        "service.listen",
        "The service is told or found to listen where the policy does not allow",
        Severity::High,
    ),
    rule(
        "service.listen-all",
        "The policy lets the service listen on every interface",
        Severity::Medium,
    ),
    rule(
        "telemetry.on",
        "Analytics or telemetry are turned back on",
        Severity::Medium,
    ),
    rule(
        "sandbox.off",
        "The Landlock sandbox is turned off",
        Severity::High,
    ),
    rule(
        "sandbox.unavailable",
        "The kernel cannot enforce the Landlock sandbox",
        Severity::High,
    ),
    rule(
        "sandbox.partial",
        "The kernel enforces only part of the Landlock sandbox",
        Severity::Medium,
    ),
    rule(
        "sandbox.nproc",
        "No process limit for the service",
        Severity::Low,
    ),
    rule(
        "integrity.off",
        "The weights are not verified before start",
        Severity::Medium,
    ),
    rule(
        "integrity.manifest",
        "The integrity manifest is missing or does not match",
        Severity::High,
    ),
    rule(
        "scan.off",
        "Model files are not scanned before start",
        Severity::Medium,
    ),
    rule(
        "scan.findings",
        "The model scan is not clean",
        Severity::High,
    ),
    rule(
        "export.unit",
        "An exported systemd unit no longer carries the policy's protections",
        Severity::High,
    ),
    rule(
        "export.manifest",
        "Exported Kubernetes manifests no longer carry the policy's protections",
        Severity::High,
    ),
    rule(
        "check.unreadable",
        "Part of the deployment could not be examined",
        Severity::Low,
    ),
];

const fn rule(id: &'static str, title: &'static str, severity: Severity) -> Rule {
    Rule {
        id,
        title,
        severity,
    }
}

/// The rule with this id.
pub fn rule_of(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// One hole found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    /// What was seen.
    pub seen: String,
    /// How to fix it.
    pub fix: String,
    /// The path involved, if one.
    pub path: Option<PathBuf>,
}

/// A check that found nothing, with what it looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passed {
    pub check: &'static str,
    pub seen: String,
}

/// The audit's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub root: PathBuf,
    pub policy: PathBuf,
    pub findings: Vec<Finding>,
    pub passed: Vec<Passed>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A check another module provides (integrity manifest, model scan): it runs as before a start,
/// and a refusal becomes a finding with this id and fix.
pub struct Extra<'a> {
    pub id: &'static str,
    pub check: &'a dyn PreStart,
    pub fix: &'static str,
}

struct Audit<'a> {
    policy: &'a Policy,
    findings: Vec<Finding>,
    passed: Vec<Passed>,
    names: Names,
}

impl Audit<'_> {
    fn find(
        &mut self,
        id: &'static str,
        seen: String,
        fix: impl Into<String>,
        path: Option<&Path>,
    ) {
        let severity = rule_of(id).map_or(Severity::Medium, |r| r.severity);
        self.find_as(id, severity, seen, fix, path);
    }

    fn find_as(
        &mut self,
        id: &'static str,
        severity: Severity,
        seen: String,
        fix: impl Into<String>,
        path: Option<&Path>,
    ) {
        self.findings.push(Finding {
            id,
            severity,
            seen,
            fix: fix.into(),
            path: path.map(Path::to_owned),
        });
    }

    fn pass(&mut self, check: &'static str, seen: impl Into<String>) {
        self.passed.push(Passed {
            check,
            seen: seen.into(),
        });
    }

    fn count(&self) -> usize {
        self.findings.len()
    }

    fn show(&self, p: &Path) -> String {
        match p.strip_prefix(&self.policy.root) {
            Ok(r) if r.as_os_str().is_empty() => ".".into(),
            Ok(r) => r.display().to_string(),
            Err(_) => p.display().to_string(),
        }
    }

    fn owner(&self, m: &Meta) -> String {
        format!(
            "{}:{} {:04o}",
            self.names.user(m.uid),
            self.names.group(m.gid),
            m.mode
        )
    }
}

/// Runs every check. `extra` are the integrity and scan checks, when available.
pub fn run(policy: &Policy, extra: &[Extra<'_>]) -> Report {
    let mut a = Audit {
        policy,
        findings: Vec::new(),
        passed: Vec::new(),
        names: Names::default(),
    };
    let db = account::System;
    let user = db.user(policy.service.user.as_str()).ok().flatten();
    let acct = account_of(policy, &db, user.as_ref());

    check_account(&mut a, user.as_ref());
    check_tiers(&mut a, &db, &acct);
    check_tree(&mut a);
    check_ancestors(&mut a, &acct);
    check_private(&mut a, &acct);
    check_listen(&mut a);
    check_sandbox(&mut a);
    check_integrity(&mut a, extra);
    a.findings.sort_by(|x, y| {
        y.severity
            .cmp(&x.severity)
            .then_with(|| order(x.id).cmp(&order(y.id)))
    });
    Report {
        root: policy.root.clone(),
        policy: policy.file.clone(),
        findings: a.findings,
        passed: a.passed,
    }
}

fn order(id: &str) -> usize {
    RULES.iter().position(|r| r.id == id).unwrap_or(usize::MAX)
}

fn account_of(
    policy: &Policy,
    db: &dyn Accounts,
    user: Option<&account::UserInfo>,
) -> perms::Account {
    let gid = db.group(policy.group.as_str()).ok().flatten();
    let mut gids: Vec<u32> = match (user, gid) {
        (Some(_), Some(g)) => db
            .groups_of(policy.service.user.as_str(), g)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    gids.extend(gid);
    perms::Account {
        user: Principal::new(policy.service.user.as_str(), user.map(|u| u.uid)),
        group: Principal::new(policy.group.as_str(), gid),
        gids,
    }
}

fn check_account(a: &mut Audit<'_>, user: Option<&account::UserInfo>) {
    let name = a.policy.service.user.to_string();
    let before = a.count();
    if a.policy.service.allow_root || user.is_some_and(|u| u.uid == 0) {
        a.find(
            "service.root",
            format!(
                "the service is set to run as root (user {name}, service.allow-root = {})",
                a.policy.service.allow_root
            ),
            "use a dedicated system account and remove service.allow-root",
            Some(&a.policy.file.clone()),
        );
    }
    match user {
        None => a.find(
            "account.missing",
            format!("the account {name} does not exist"),
            "run `warden harden` as root: it creates a system account with no login shell",
            None,
        ),
        Some(u) if account::is_login_shell(&u.shell) => a.find(
            "account.login-shell",
            format!("{name} has the login shell {}", u.shell.display()),
            format!("usermod -s {} {name}", account::nologin_shell().display()),
            None,
        ),
        Some(u) => {
            if a.count() == before {
                a.pass(
                    "account",
                    format!(
                        "{name} (uid {}) has no login shell ({})",
                        u.uid,
                        u.shell.display()
                    ),
                );
            }
        }
    }
}

/// Walks `dir` without following symlinks; calls `f` on every entry (the root included).
/// Returns the directories that could not be read.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &Meta)) -> Vec<PathBuf> {
    let mut unreadable = Vec::new();
    let mut stack = vec![dir.to_owned()];
    let mut first = true;
    while let Some(d) = stack.pop() {
        if first {
            first = false;
            match crate::sys::fs::lstat(&d) {
                Ok(m) => {
                    f(&d, &m);
                    if m.kind != Kind::Dir {
                        continue;
                    }
                }
                Err(_) => continue,
            }
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            unreadable.push(d);
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = crate::sys::fs::lstat(&p) else {
                continue;
            };
            f(&p, &m);
            if m.kind == Kind::Dir {
                stack.push(p);
            }
        }
    }
    unreadable
}

/// `n thing` or `n things`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn examples(list: &[String]) -> String {
    let shown: Vec<&str> = list.iter().take(3).map(String::as_str).collect();
    let more = list.len().saturating_sub(shown.len());
    format!(
        "{}{}",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

fn check_tiers(a: &mut Audit<'_>, db: &dyn Accounts, acct: &perms::Account) {
    let lookup = |is_group: bool, name: &str| {
        if is_group {
            db.group(name).ok().flatten()
        } else {
            db.user(name).ok().flatten().map(|u| u.uid)
        }
    };
    let zones = match Zones::new(a.policy, acct, &lookup) {
        Ok(z) => z,
        Err(e) => {
            a.find(
                "tier.owner",
                format!("the tiers' owners cannot be resolved: {e}"),
                "create the owner or group named in the policy, or change the policy",
                None,
            );
            return;
        }
    };
    let before = a.count();
    let mut files = 0usize;
    for (zi, z) in zones.zones.iter().enumerate() {
        if z.kind != ZoneKind::ReadOnly || zones.zone_for(&z.path) != Some(zi) {
            continue;
        }
        let mut by_account = Vec::new();
        let mut owner = Vec::new();
        let mut mode = Vec::new();
        let mut writable = false;
        let unreadable = walk(&z.path, &mut |p, m| {
            if zones.zone_for(p) != Some(zi) {
                return;
            }
            files += 1;
            let (Some(plan), _) = perms::plan::plan_entry(z, m) else {
                return;
            };
            let shown = format!("{} ({})", a.show(p), a.owner(m));
            if acct.user.id == Some(m.uid) {
                // Files (the weights) first in the examples, then directories.
                if m.kind == Kind::File {
                    by_account.insert(0, shown);
                } else {
                    by_account.push(shown);
                }
            } else if plan.chown {
                owner.push(shown);
            } else if plan.chmod {
                writable |= m.mode & !plan.target.mode & 0o222 != 0;
                mode.push(shown);
            }
        });
        let label = z.label.clone();
        let want = format!(
            "{}:{}, dirs {:04o}, files {:04o}",
            z.owner.name, z.group.name, z.dir_mode, z.file_mode
        );
        let fix = format!("run `warden harden` as root: the tier becomes {want}");
        if !by_account.is_empty() {
            a.find(
                "tier.owned-by-account",
                format!(
                    "{} entries of the read-only tier {label} are owned by the service account {}: {}; an owner can chmod them writable and overwrite them",
                    by_account.len(),
                    acct.user.name,
                    examples(&by_account)
                ),
                fix.clone(),
                Some(&z.path),
            );
        }
        if !owner.is_empty() {
            a.find(
                "tier.owner",
                format!(
                    "{} entries of the read-only tier {label} are not {}:{}: {}",
                    owner.len(),
                    z.owner.name,
                    z.group.name,
                    examples(&owner)
                ),
                fix.clone(),
                Some(&z.path),
            );
        }
        if !mode.is_empty() {
            a.find_as(
                "tier.mode",
                if writable { Severity::High } else { Severity::Medium },
                format!(
                    "{} entries of the read-only tier {label} have other modes than {:04o}/{:04o}{}: {}",
                    mode.len(),
                    z.dir_mode,
                    z.file_mode,
                    if writable { ", some writable" } else { "" },
                    examples(&mode)
                ),
                fix.clone(),
                Some(&z.path),
            );
        }
        unreadable_finding(a, &unreadable);
    }
    if a.count() == before {
        a.pass(
            "tiers",
            format!(
                "{files} entries of the read-only tiers are owned and moded as the policy says"
            ),
        );
    }
}

fn unreadable_finding(a: &mut Audit<'_>, dirs: &[PathBuf]) {
    if dirs.is_empty() {
        return;
    }
    let shown: Vec<String> = dirs.iter().map(|d| a.show(d)).collect();
    a.find(
        "check.unreadable",
        format!(
            "{} could not be read: {}",
            plural(dirs.len(), "directory", "directories"),
            examples(&shown)
        ),
        "run `warden check` as root to examine everything",
        dirs.first().map(PathBuf::as_path),
    );
}

fn is_log_name(name: &str) -> bool {
    name.ends_with(".log")
        || name.contains(".log.")
        || name == "nohup.out"
        || name.ends_with(".log.gz")
}

fn check_tree(a: &mut Audit<'_>) {
    let before = a.count();
    let mut world = Vec::new();
    let mut setuid = Vec::new();
    let mut stray = Vec::new();
    let mut entries = 0usize;
    let logs_dir = a.policy.logs_dir.clone();
    let mut roots = vec![a.policy.root.clone()];
    for d in [&a.policy.logs_dir, &a.policy.tmp_dir, &a.policy.state_dir] {
        if !d.starts_with(&a.policy.root) {
            roots.push(d.clone());
        }
    }
    let mut unreadable = Vec::new();
    for r in &roots {
        unreadable.extend(walk(r, &mut |p, m| {
            entries += 1;
            if m.kind == Kind::Symlink {
                return;
            }
            let shown = format!("{} ({})", a.show(p), a.owner(m));
            if m.mode & 0o002 != 0 {
                world.push(shown.clone());
            }
            if m.kind == Kind::File && m.mode & 0o6000 != 0 {
                setuid.push(shown.clone());
            }
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if m.kind == Kind::File
                && is_log_name(&name)
                && !p.starts_with(&logs_dir)
                && m.mode & 0o044 != 0
            {
                stray.push(shown);
            }
        }));
    }
    if !world.is_empty() {
        a.find(
            "tree.world-writable",
            format!(
                "{} world-writable: {}",
                plural(world.len(), "entry", "entries"),
                examples(&world)
            ),
            "chmod o-w them (`warden harden` fixes the tiers and private directories)",
            Some(&a.policy.root.clone()),
        );
    }
    if !setuid.is_empty() {
        a.find(
            "tree.setuid",
            format!(
                "{}: {}",
                plural(setuid.len(), "setuid/setgid file", "setuid/setgid files"),
                examples(&setuid)
            ),
            "chmod u-s,g-s them: nothing in a model deployment needs them",
            Some(&a.policy.root.clone()),
        );
    }
    if !stray.is_empty() {
        a.find(
            "logs.stray",
            format!(
                "{} outside {} readable by other accounts (they hold prompts): {}",
                plural(stray.len(), "log file", "log files"),
                a.show(&logs_dir),
                examples(&stray)
            ),
            "chmod 600 them (or remove them) and let warden capture the output into the log directory, redacted and 0640",
            Some(&a.policy.root.clone()),
        );
    }
    unreadable_finding(a, &unreadable);
    if a.count() == before {
        a.pass(
            "tree",
            format!("{entries} entries: nothing world-writable, no setuid/setgid file, no stray readable log"),
        );
    }
}

fn check_ancestors(a: &mut Audit<'_>, acct: &perms::Account) {
    let before = a.count();
    let mut admins: Vec<u32> = vec![0];
    for t in a.policy.read_only_tiers() {
        if let Ok(Some(u)) = account::System.user(t.owner.as_str())
            && acct.user.id != Some(u.uid)
        {
            admins.push(u.uid);
        }
    }
    let mut dirs: Vec<PathBuf> = a.policy.root.ancestors().map(Path::to_owned).collect();
    dirs.reverse();
    let fix_owner = "chown root: every directory above the deployment must belong to root (or the admin that owns the tiers)";
    for d in &dirs {
        let Ok(m) = crate::sys::fs::lstat(d) else {
            continue;
        };
        let seen = format!("{} ({})", d.display(), a.owner(&m));
        if !admins.contains(&m.uid) {
            a.find(
                "path.ancestor-owner",
                format!(
                    "{seen} is owned by {}: its owner can swap the whole deployment",
                    a.names.user(m.uid)
                ),
                fix_owner,
                Some(d),
            );
        }
        let sticky_root = m.mode & 0o1000 != 0 && m.uid == 0 && *d != a.policy.root;
        if m.mode & 0o022 != 0 && !sticky_root {
            a.find(
                "path.ancestor-writable",
                format!("{seen} is writable by its group or by others: they can rename it and put another deployment in its place"),
                format!("chmod go-w {}", d.display()),
                Some(d),
            );
        }
        if acct.user.id.is_some() && !perms::can_traverse(&m, acct) {
            a.find(
                "path.untraversable",
                format!(
                    "{seen}: the service account {} cannot enter it, so it cannot reach the deployment",
                    acct.user.name
                ),
                format!(
                    "chmod o+x {} (traverse only, no listing), or move the deployment to a directory like /srv",
                    d.display()
                ),
                Some(d),
            );
        }
    }
    if a.count() == before {
        a.pass(
            "ancestors",
            format!(
                "{} directories from / to the deployment: owned by root or the admin, not writable by others, traversable by the account",
                dirs.len()
            ),
        );
    }
}

fn check_private(a: &mut Audit<'_>, acct: &perms::Account) {
    let p = a.policy;
    let before = a.count();
    let mine = |m: &Meta| acct.user.id.is_none_or(|u| u == m.uid);
    // Logs.
    if let Ok(m) = crate::sys::fs::lstat(&p.logs_dir) {
        if m.mode & 0o027 != 0 || !mine(&m) {
            a.find(
                "logs.dir-mode",
                format!("{} is {}", a.show(&p.logs_dir), a.owner(&m)),
                format!(
                    "chown {}:{} and chmod 0750 it (`warden harden` does both)",
                    acct.user.name, acct.group.name
                ),
                Some(&p.logs_dir),
            );
        }
        let want = p.logs.file_mode.0;
        let mut loose = Vec::new();
        let mut world = false;
        walk(&p.logs_dir, &mut |f, m| {
            if m.kind == Kind::File && m.mode & !want & 0o7777 != 0 {
                world |= m.mode & 0o004 != 0;
                loose.push(format!("{} ({})", a.show(f), a.owner(m)));
            }
        });
        if !loose.is_empty() {
            a.find_as(
                "logs.file-mode",
                if world {
                    Severity::High
                } else {
                    Severity::Medium
                },
                format!(
                    "{} more open than logs.file-mode {:04o}{}: {}",
                    plural(loose.len(), "log file is", "log files are"),
                    want,
                    if world {
                        " (readable by every account, prompts included)"
                    } else {
                        ""
                    },
                    examples(&loose)
                ),
                format!("chmod {want:04o} them (`warden harden` does)"),
                Some(&p.logs_dir),
            );
        }
    }
    let r = &p.logs.rotate;
    if r.every == Every::Never && r.size.is_none() {
        a.find(
            "logs.rotation",
            "logs.rotate has every = \"never\" and no size: the log grows without bound".into(),
            "set logs.rotate = { every = \"daily\", keep = 7 } (or a size)",
            Some(&p.file),
        );
    }
    if p.logs.redact.is_empty() {
        a.find(
            "logs.redaction",
            "logs.redact is empty: prompts and secrets reach the log file".into(),
            "set logs.redact = [\"prompts\", \"secrets\", \"pii\"]",
            Some(&p.file),
        );
    }
    // Temp and state.
    for (dir, id) in [(&p.tmp_dir, "tmp.mode"), (&p.state_dir, "state.mode")] {
        match crate::sys::fs::lstat(dir) {
            Ok(m) if m.kind != Kind::Dir || m.mode != 0o700 || !mine(&m) => a.find(
                id,
                format!("{} is {}", a.show(dir), a.owner(&m)),
                format!(
                    "chown {}:{} and chmod 0700 it (`warden harden` and `warden run` do)",
                    acct.user.name, acct.group.name
                ),
                Some(dir),
            ),
            _ => {}
        }
    }
    if a.count() == before {
        a.pass(
            "private",
            format!(
                "log directory {} (files {:04o}, rotated {}, redacted), tmp and state 0700, the service's",
                a.show(&p.logs_dir),
                p.logs.file_mode.0,
                match r.every {
                    Every::Hourly => "hourly",
                    Every::Daily => "daily",
                    Every::Never => "by size",
                }
            ),
        );
    }
}

fn check_listen(a: &mut Audit<'_>) {
    let p = a.policy;
    let before = a.count();
    let envmap: BTreeMap<String, String> = env::build(
        p,
        &env::Identity {
            user: p.service.user.as_str(),
            home: None,
        },
        std::env::vars(),
    );
    for r in preflight::check(p, &envmap) {
        let id = if r.key == "service.allow-share" {
            "service.share"
        } else {
            "service.listen"
        };
        a.find(id, r.seen.clone(), r.fix.clone(), Some(&p.file));
    }
    if p.service.allow_share {
        a.find(
            "service.share",
            "service.allow-share = true: public tunnels are allowed".into(),
            "remove service.allow-share; put an authenticating reverse proxy in front instead",
            Some(&p.file),
        );
    }
    for l in &p.service.listen {
        if l.ip().is_unspecified() {
            a.find(
                "service.listen-all",
                format!("service.listen allows {l}: every network interface"),
                "listen on 127.0.0.1 and put a TLS reverse proxy with authentication in front",
                Some(&p.file),
            );
        }
    }
    // Telemetry: warden's defaults, unless the policy turns them back.
    for (k, base, v) in env::DEFAULTS {
        if *base != env::Base::Value || matches!(*k, "PYTHONUNBUFFERED" | "GRADIO_SHARE") {
            continue;
        }
        if let Some(set) = envmap.get(*k).filter(|set| set.as_str() != *v) {
            a.find(
                "telemetry.on",
                format!("service.env sets {k}={set} (warden's default is {v})"),
                format!("remove {k} from service.env"),
                Some(&p.file),
            );
        }
    }
    // The running service, if any.
    if let Ok(st) = control::status(p)
        && let Some(pid) = st.service_pid
    {
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
            });
        if uid.as_deref() == Some("0") {
            a.find(
                "service.root",
                format!("the running service (pid {pid}) has effective uid 0"),
                "stop it and start it with `warden up` as root, with a dedicated account",
                None,
            );
        }
        for w in st.warnings.iter().filter(|w| w.starts_with("listening")) {
            a.find(
                "service.listen",
                format!("the running service (pid {pid}) is {w}"),
                "stop it and fix the command line; warden's preflight refuses such a start",
                None,
            );
        }
    }
    if a.count() == before {
        let l: Vec<String> = p.service.listen.iter().map(ToString::to_string).collect();
        a.pass(
            "listen",
            format!(
                "listens only on {}; no public tunnel; analytics and telemetry off",
                if l.is_empty() {
                    "nothing".into()
                } else {
                    l.join(", ")
                }
            ),
        );
    }
}

fn check_sandbox(a: &mut Audit<'_>) {
    let p = a.policy;
    let before = a.count();
    let k = sandbox::support();
    let required = p.sandbox.landlock == Enforcement::Required;
    match (p.sandbox.landlock, k.abi) {
        (Enforcement::Off, _) => a.find(
            "sandbox.off",
            "sandbox.landlock = \"off\": only file modes stand between the service and the weights"
                .into(),
            format!(
                "set sandbox.landlock = \"best-effort\" (or \"required\"); the kernel offers {}",
                k.abi
                    .map_or_else(|| "no Landlock".to_owned(), |v| format!("Landlock ABI {v}"))
            ),
            Some(&p.file),
        ),
        (_, None) => a.find_as(
            "sandbox.unavailable",
            if required {
                Severity::High
            } else {
                Severity::Medium
            },
            format!(
                "Landlock is unavailable: {}{}",
                k.reason.clone().unwrap_or_default(),
                if required {
                    "; sandbox.landlock = \"required\" refuses to start"
                } else {
                    ""
                }
            ),
            "use a kernel with Landlock enabled (5.13+, ABI 6+ for the full sandbox)",
            None,
        ),
        (_, Some(v)) => {
            let gaps = sandbox::gaps(Some(v), None);
            if !gaps.is_empty() {
                let list: Vec<String> = gaps
                    .iter()
                    .map(|g| format!("{} ({})", g.feature.as_str(), g.feature.risk()))
                    .collect();
                a.find_as(
                    "sandbox.partial",
                    if required {
                        Severity::High
                    } else {
                        Severity::Medium
                    },
                    format!(
                        "the kernel offers Landlock ABI {v}; not enforced: {}{}",
                        list.join("; "),
                        if required {
                            "; sandbox.landlock = \"required\" refuses to start"
                        } else {
                            ""
                        }
                    ),
                    format!("use a kernel with Landlock ABI {}", sandbox::TESTED_ABI),
                    None,
                );
            }
        }
    }
    if p.sandbox.nproc.is_none() {
        a.find(
            "sandbox.nproc",
            "sandbox.nproc is not set: a compromised service can fork without limit".into(),
            "set sandbox.nproc (e.g. 512; threads count too)",
            Some(&p.file),
        );
    }
    if a.count() == before {
        a.pass(
            "sandbox",
            format!(
                "Landlock ABI {} available (asks for {}), sandbox.landlock = {}, nproc {}",
                k.abi.unwrap_or(0),
                sandbox::TESTED_ABI,
                match p.sandbox.landlock {
                    Enforcement::Required => "required",
                    Enforcement::BestEffort => "best-effort",
                    Enforcement::Off => "off",
                },
                p.sandbox.nproc.unwrap_or(0)
            ),
        );
    }
}

fn check_integrity(a: &mut Audit<'_>, extra: &[Extra<'_>]) {
    let p = a.policy;
    let before = a.count();
    if p.integrity.verify == crate::policy::schema::Verify::Off {
        a.find(
            "integrity.off",
            "integrity.verify = \"off\": a swapped weight is loaded without a word".into(),
            "set integrity.verify = \"quick\" and run `warden seal`",
            Some(&p.file),
        );
    }
    if !p.integrity.scan {
        a.find(
            "scan.off",
            "integrity.scan = false: a pickle hidden in a model file runs code at load".into(),
            "set integrity.scan = true",
            Some(&p.file),
        );
    }
    for e in extra {
        match e.check.check(p) {
            Ok(()) => a.pass(e.id, format!("{}: ok", e.check.name())),
            Err(reason) => a.find(e.id, format!("{}: {reason}", e.check.name()), e.fix, None),
        }
    }
    if a.count() == before && extra.is_empty() {
        a.pass(
            "integrity",
            format!(
                "verify = {}, scan = {} (manifest and scan not examined here)",
                match p.integrity.verify {
                    crate::policy::schema::Verify::Off => "off",
                    crate::policy::schema::Verify::Quick => "quick",
                    crate::policy::schema::Verify::Full => "full",
                },
                p.integrity.scan
            ),
        );
    }
}
