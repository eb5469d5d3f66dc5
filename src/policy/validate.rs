//! Turning the parsed file into a [`Policy`]: resolving paths against the policy's directory
//! and rejecting every combination that would otherwise fail later, or silently weaken the
//! deployment.

use std::path::{Component, Path, PathBuf};

use super::locate::{Seg, line_col, value_offset};
use super::schema::{self, Access};
use super::{
    AccountName, Diagnostic, Policy, PolicyError, RO_DIR_MODE, RO_FILE_MODE, RW_DIR_MODE,
    RW_FILE_MODE, Tier,
};

/// System directories that must never become a service-owned private directory.
const SYSTEM_DIRS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
    "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/log", "/var/tmp",
];

struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn diag(&self, path: &[Seg<'_>], message: String) -> Diagnostic {
        let (line, column) = value_offset(self.text, path)
            .map(|o| line_col(self.text, o))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            key: Some(key_name(path)),
            message,
        }
    }

    fn error(&mut self, path: &[Seg<'_>], message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.errors.push(d);
    }

    fn warn(&mut self, path: &[Seg<'_>], message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.warnings.push(d);
    }
}

fn key_name(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Lexically normalizes `p` joined onto `base` (no filesystem access): `.` dropped, `..` pops.
pub fn normalize(base: &Path, p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(p).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub(super) fn resolve(f: schema::File, text: &str, file: &Path) -> Result<Policy, PolicyError> {
    let mut cx = Ctx {
        text,
        file,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let parent = file.parent().unwrap_or(Path::new("/"));
    let root = match parent.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            cx.errors.push(Diagnostic {
                file: file.to_owned(),
                line: None,
                column: None,
                key: None,
                message: format!(
                    "cannot resolve the deployment directory {}: {e}",
                    parent.display()
                ),
            });
            return Err(PolicyError::Invalid(cx.errors));
        }
    };

    check_service(&mut cx, &f.service);
    let group = f
        .service
        .group
        .clone()
        .unwrap_or_else(|| f.service.user.clone());

    let workdir = normalize(&root, Path::new(&f.service.workdir));
    if !workdir.is_dir() {
        cx.error(
            &[Seg::Key("service"), Seg::Key("workdir")],
            format!("{} is not a directory", workdir.display()),
        );
    }

    let mut tiers = Vec::new();
    for (i, t) in f.tiers.iter().enumerate() {
        let at = [Seg::Key("tier"), Seg::Idx(i), Seg::Key("path")];
        let Some(path) = inside_root(&mut cx, &root, &t.path, &at, true) else {
            continue;
        };
        if path == root {
            cx.error(
                &at,
                "a tier cannot be the whole deployment: name the model directories instead",
            );
            continue;
        }
        if let Some(j) = tiers.iter().position(|x: &Tier| x.path == path) {
            cx.error(&at, format!("the same path as tier[{j}]; merge the two"));
            continue;
        }
        let ro = t.access == Access::ReadOnly;
        let owner = t
            .owner
            .clone()
            .unwrap_or_else(|| AccountName("root".into()));
        let tier = Tier {
            rel: path.strip_prefix(&root).unwrap_or(&path).to_owned(),
            path,
            access: t.access,
            owner,
            group: t.group.clone().unwrap_or_else(|| group.clone()),
            file_mode: t
                .mode
                .unwrap_or(if ro { RO_FILE_MODE } else { RW_FILE_MODE }),
            dir_mode: t
                .dir_mode
                .unwrap_or(if ro { RO_DIR_MODE } else { RW_DIR_MODE }),
            seal: t.seal.unwrap_or(ro),
        };
        check_tier_modes(&mut cx, i, &tier, &f.service.user);
        tiers.push(tier);
    }
    // Least specific first: a tier that contains another comes before it.
    let order = |t: &Tier| t.path.components().count();
    tiers.sort_by_key(order);
    check_tier_nesting(&mut cx, &f, &tiers);

    let private = [
        ("logs", &f.logs.dir),
        ("tmp", &f.tmp.dir),
        ("state", &f.state.dir),
    ];
    let mut dirs: Vec<(&str, PathBuf)> = Vec::new();
    for (section, dir) in private {
        let at = [Seg::Key(section), Seg::Key("dir")];
        let Some(path) = private_dir(&mut cx, &root, dir, &at) else {
            continue;
        };
        if let Some((other, _)) = dirs.iter().find(|(_, p)| *p == path) {
            cx.error(
                &at,
                format!("the same directory as {other}.dir; give each its own"),
            );
        }
        for t in tiers.iter().filter(|t| t.access == Access::ReadOnly) {
            if path.starts_with(&t.path) {
                cx.error(
                    &at,
                    format!(
                        "{} is inside the read-only tier {}",
                        path.display(),
                        t.rel.display()
                    ),
                );
            } else if t.path.starts_with(&path) {
                cx.error(
                    &at,
                    format!(
                        "{} contains the read-only tier {}: the service could rename the weights away",
                        path.display(),
                        t.rel.display()
                    ),
                );
            }
        }
        dirs.push((section, path));
    }
    check_logs(&mut cx, &f.logs);
    check_sandbox(&mut cx, &f.sandbox, &root, &tiers);

    if !cx.errors.is_empty() {
        return Err(PolicyError::Invalid(cx.errors));
    }
    let dir = |name: &str| {
        dirs.iter()
            .find(|(s, _)| *s == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    Ok(Policy {
        file: file.to_owned(),
        workdir,
        group,
        tiers,
        logs_dir: dir("logs"),
        tmp_dir: dir("tmp"),
        state_dir: dir("state"),
        root,
        service: f.service,
        logs: f.logs,
        tmp: f.tmp,
        sandbox: f.sandbox,
        integrity: f.integrity,
        warnings: cx.warnings,
    })
}

fn check_service(cx: &mut Ctx<'_>, s: &schema::Service) {
    let key = |k| [Seg::Key("service"), Seg::Key(k)];
    let name_ok = !s.name.is_empty()
        && s.name.len() <= 64
        && s.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !name_ok {
        cx.error(&key("name"), "use 1-64 letters, digits, '-', '_', '.' or '@' (it names the systemd unit and the lock)");
    }
    if s.command.is_empty() || s.command[0].is_empty() {
        cx.error(&key("command"), "the command is empty: give the program and its arguments, e.g. [\"python3\", \"app.py\"]");
    }
    if s.user.as_str() == "root" && !s.allow_root {
        cx.error(&key("user"), "the service would run as root; use a dedicated account, or set service.allow-root = true if you really must");
    }
    if s.group.as_ref().is_some_and(|g| g.as_str() == "root") {
        cx.error(&key("group"), "the service's group must not be root: every root-group file would become readable or writable by it");
    }
    for (i, g) in s.groups.iter().enumerate() {
        if s.groups[..i].contains(g) {
            cx.warn(
                &[Seg::Key("service"), Seg::Key("groups"), Seg::Idx(i)],
                format!("group {g} is listed twice"),
            );
        }
        if g.as_str() == "root"
            || g.as_str() == "sudo"
            || g.as_str() == "wheel"
            || g.as_str() == "docker"
        {
            cx.error(
                &[Seg::Key("service"), Seg::Key("groups"), Seg::Idx(i)],
                format!("group {g} grants administrative power; the service must not be in it"),
            );
        }
    }
    for (k, v) in &s.env {
        let valid = !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0');
        if !valid {
            cx.error(&[Seg::Key("service"), Seg::Key("env"), Seg::Key(k)], "an environment variable name must be non-empty without '=' or NUL, and its value without NUL");
        }
    }
    if s.restart.within.0.is_zero() {
        cx.error(
            &[Seg::Key("service"), Seg::Key("restart"), Seg::Key("within")],
            "must be longer than zero",
        );
    }
    if let Some(r) = &s.ready {
        let at = [Seg::Key("service"), Seg::Key("ready")];
        match (&r.http, &r.tcp) {
            (Some(_), Some(_)) => cx.error(&at, "give either http or tcp, not both"),
            (None, None) => cx.error(
                &at,
                "give http = \"http://127.0.0.1:PORT/\" or tcp = \"127.0.0.1:PORT\"",
            ),
            (Some(u), None) if !u.starts_with("http://") => {
                cx.error(
                    &[Seg::Key("service"), Seg::Key("ready"), Seg::Key("http")],
                    "the readiness URL must start with http://",
                );
            }
            _ => {}
        }
    }
}

fn check_tier_modes(cx: &mut Ctx<'_>, i: usize, t: &Tier, user: &AccountName) {
    let at = |k| [Seg::Key("tier"), Seg::Idx(i), Seg::Key(k)];
    if t.file_mode.0 & 0o7000 != 0 {
        cx.error(
            &at("mode"),
            format!(
                "{} sets setuid/setgid/sticky bits on files; remove them",
                t.file_mode
            ),
        );
    }
    if t.file_mode.0 & 0o002 != 0 || t.dir_mode.0 & 0o002 != 0 {
        cx.error(&at("mode"), "a tier must not be world-writable");
    }
    if t.access == Access::ReadOnly {
        if &t.owner == user {
            cx.error(&at("owner"), format!("the owner of a read-only tier must not be the service account {user}: an owner can chmod the files back and overwrite them"));
        }
        if t.file_mode.0 & 0o022 != 0 {
            cx.error(
                &at("mode"),
                format!(
                    "{} lets the group or others write to a read-only tier",
                    t.file_mode
                ),
            );
        }
        if t.dir_mode.0 & 0o022 != 0 {
            cx.error(
                &at("dir-mode"),
                format!(
                    "{} lets the group or others create files in a read-only tier",
                    t.dir_mode
                ),
            );
        }
    }
    if t.file_mode.0 & 0o040 == 0 {
        cx.error(&at("mode"), format!("{} gives the service's group no read access: the service could not load these files", t.file_mode));
    }
    if t.dir_mode.0 & 0o050 != 0o050 {
        cx.error(&at("dir-mode"), format!("{} does not let the service's group list and enter directories (needs r-x for the group)", t.dir_mode));
    }
}

fn check_tier_nesting(cx: &mut Ctx<'_>, f: &schema::File, tiers: &[Tier]) {
    for inner in tiers.iter().filter(|t| t.access == Access::ReadOnly) {
        for outer in tiers.iter().filter(|t| t.access == Access::ReadWrite) {
            if inner.path != outer.path && inner.path.starts_with(&outer.path) {
                let i = f
                    .tiers
                    .iter()
                    .position(|t| t.path.trim_end_matches('/') == inner.rel.to_string_lossy())
                    .unwrap_or(0);
                cx.error(
                    &[Seg::Key("tier"), Seg::Idx(i), Seg::Key("path")],
                    format!(
                        "read-only tier {} is inside the read-write tier {}: the service could rename it away",
                        inner.rel.display(),
                        outer.rel.display()
                    ),
                );
            }
        }
    }
}

fn check_logs(cx: &mut Ctx<'_>, l: &schema::Logs) {
    if l.rotate.keep == 0 {
        cx.error(
            &[Seg::Key("logs"), Seg::Key("rotate"), Seg::Key("keep")],
            "keep at least 1 rotated file",
        );
    }
    if l.file_mode.0 & 0o7137 != 0 {
        cx.error(
            &[Seg::Key("logs"), Seg::Key("file-mode")],
            format!("{} is too open for log files: at most 0640", l.file_mode),
        );
    }
    if l.rotate.size.is_some_and(|s| s.0 < 4096) {
        cx.error(
            &[Seg::Key("logs"), Seg::Key("rotate"), Seg::Key("size")],
            "rotate at no less than 4KiB",
        );
    }
}

/// `sandbox.read` and `sandbox.write`: extra paths must not undo the sandbox.
fn check_sandbox(cx: &mut Ctx<'_>, sb: &schema::Sandbox, root: &Path, tiers: &[Tier]) {
    for (key, list) in [("read", &sb.read), ("write", &sb.write)] {
        for (i, raw) in list.iter().enumerate() {
            let at = [Seg::Key("sandbox"), Seg::Key(key), Seg::Idx(i)];
            if raw.is_empty() {
                cx.error(&at, "the path is empty");
                continue;
            }
            let path = normalize(Path::new("/"), &root.join(raw));
            if path == Path::new("/") {
                cx.error(&at, "the whole file system cannot be opened to the service; name the directories it needs");
                continue;
            }
            if key == "read" {
                if Path::new("/etc/shadow").starts_with(&path) {
                    cx.error(&at, format!("{} holds /etc/shadow and the other secrets the sandbox keeps out; name the files the service needs", path.display()));
                }
                continue;
            }
            if SYSTEM_DIRS.iter().any(|d| Path::new(d) == path) {
                cx.error(&at, format!("{} is a shared system directory: the service must not write there; use a directory of its own", path.display()));
            } else if root.starts_with(&path) {
                cx.error(&at, format!("{} contains the deployment: the service could rewrite its own app and weights", path.display()));
            } else if let Some(t) = tiers.iter().find(|t| {
                t.access == Access::ReadOnly
                    && (path.starts_with(&t.path) || t.path.starts_with(&path))
            }) {
                cx.error(
                    &at,
                    format!(
                        "{} overlaps the read-only tier {}",
                        path.display(),
                        t.rel.display()
                    ),
                );
            }
        }
    }
}

/// Resolves a tier path: relative to the root, inside it lexically and after symlinks.
fn inside_root(
    cx: &mut Ctx<'_>,
    root: &Path,
    raw: &str,
    at: &[Seg<'_>],
    must_exist: bool,
) -> Option<PathBuf> {
    if raw.is_empty() {
        cx.error(at, "the path is empty");
        return None;
    }
    let path = normalize(root, Path::new(raw));
    if !path.starts_with(root) {
        cx.error(
            at,
            format!("{raw} is outside the deployment {}", root.display()),
        );
        return None;
    }
    match path.canonicalize() {
        Ok(real) if !real.starts_with(root) => {
            cx.error(
                at,
                format!(
                    "{raw} leads through a symlink to {}, outside the deployment",
                    real.display()
                ),
            );
            None
        }
        Ok(_) => Some(path),
        Err(_) if !must_exist => Some(path),
        Err(e) => {
            cx.error(at, format!("{} cannot be used: {e}", path.display()));
            None
        }
    }
}

/// Resolves a private directory (logs, tmp, state): inside the root, or an absolute path that is
/// not a shared system directory.
fn private_dir(cx: &mut Ctx<'_>, root: &Path, raw: &str, at: &[Seg<'_>]) -> Option<PathBuf> {
    if raw.is_empty() {
        cx.error(at, "the path is empty");
        return None;
    }
    let path = normalize(root, Path::new(raw));
    if path == root {
        cx.error(at, "a private directory cannot be the whole deployment");
        return None;
    }
    if SYSTEM_DIRS.iter().any(|d| Path::new(d) == path) {
        cx.error(
            at,
            format!(
                "{} is a shared system directory; use a directory of its own",
                path.display()
            ),
        );
        return None;
    }
    if root.starts_with(&path) {
        cx.error(at, format!("{} contains the deployment", path.display()));
        return None;
    }
    if path.starts_with(root) {
        return inside_root(cx, root, raw, at, false);
    }
    Some(path)
}
