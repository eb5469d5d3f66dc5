//! Checking a unit or manifests against the policy (`warden check --unit FILE`,
//! `--manifest FILE`): what an export writes must still be there. A hand edit that dropped a
//! protection, or an old export after the policy changed (a new tier, another account), shows
//! up as a problem. Pure: the caller reads the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use super::loopback_only;
use crate::policy::{Access, Policy};

/// The problems of a systemd unit for this policy (empty: none).
pub fn unit(policy: &Policy, text: &str) -> Vec<String> {
    let u = parse_unit(text);
    let mut out = Vec::new();
    let get = |key: &str| u.get(key).and_then(|v| v.last()).map(String::as_str);
    let is = |key: &str, want: &str| get(key).is_some_and(|v| v.eq_ignore_ascii_case(want));
    let yes = |key: &str| {
        get(key)
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "on"))
    };

    match get("User") {
        None => out.push("no User=: the service runs as root".into()),
        Some(u) if u == "root" || u == "0" => {
            out.push(format!("User={u}: the service runs as root"))
        }
        Some(u) if u != policy.service.user.as_str() => out.push(format!(
            "User={u}, but the policy's account is {}",
            policy.service.user
        )),
        Some(_) => {}
    }
    if !yes("NoNewPrivileges") {
        out.push("NoNewPrivileges=yes is missing".into());
    }
    if get("CapabilityBoundingSet") != Some("") {
        out.push("CapabilityBoundingSet= is not empty: the service may hold capabilities".into());
    }
    if get("AmbientCapabilities").is_some_and(|v| !v.is_empty()) {
        out.push("AmbientCapabilities= grants capabilities".into());
    }
    if !is("ProtectSystem", "strict") {
        out.push(
            "ProtectSystem=strict is missing: the OS is writable where its modes allow".into(),
        );
    }
    if !yes("PrivateTmp") {
        out.push("PrivateTmp=yes is missing: /tmp is shared with other services".into());
    }
    if !is("DevicePolicy", "closed") && !yes("PrivateDevices") {
        out.push(
            "neither DevicePolicy=closed nor PrivateDevices=yes: every device node is open".into(),
        );
    }
    if !u.contains_key("SystemCallFilter") {
        out.push("no SystemCallFilter=".into());
    }
    if !u.contains_key("RestrictAddressFamilies") {
        out.push("no RestrictAddressFamilies=".into());
    }
    match get("UMask").and_then(|m| u32::from_str_radix(m, 8).ok()) {
        Some(m) if m & 0o077 == 0o077 => {}
        _ => out.push("UMask=0077 is missing: new files are readable by others".into()),
    }
    if loopback_only(&policy.service.listen) && !is("IPAddressDeny", "any") {
        out.push("IPAddressDeny=any is missing: the service listens on loopback only".into());
    }

    // The read-only tiers must not be writable: the most specific of ReadWritePaths= and
    // ReadOnlyPaths= that covers a tier decides.
    let paths = |key: &str| -> Vec<PathBuf> {
        u.get(key)
            .into_iter()
            .flatten()
            .flat_map(|v| unit_words(v))
            .map(|w| PathBuf::from(w.trim_start_matches(['-', '+'])))
            .collect()
    };
    let rw = paths("ReadWritePaths");
    let ro = paths("ReadOnlyPaths");
    for t in policy.read_only_tiers() {
        let best = |list: &[PathBuf]| {
            list.iter()
                .filter(|p| t.path.starts_with(p) || p.starts_with(&t.path))
                .map(|p| p.components().count())
                .max()
        };
        let inside_rw = rw.iter().find(|p| p.starts_with(&t.path) && *p != &t.path);
        if let Some(p) = inside_rw {
            out.push(format!(
                "ReadWritePaths={} is inside the read-only tier {}",
                p.display(),
                t.path.display()
            ));
        }
        let covering_rw = rw
            .iter()
            .filter(|p| t.path.starts_with(p))
            .map(|p| p.components().count())
            .max();
        if covering_rw.is_some() && covering_rw >= best(&ro) {
            out.push(format!(
                "the read-only tier {} is writable through ReadWritePaths=",
                t.path.display()
            ));
        }
    }

    // warden in ExecStart, with this policy.
    let exec = get("ExecStart").map(unit_words).unwrap_or_default();
    let runs_warden = exec.iter().any(|w| w == "run")
        && exec.first().is_some_and(|p| {
            Path::new(p.trim_start_matches(['@', '-', ':', '+', '!'])).file_name()
                == Some("warden".as_ref())
        });
    if runs_warden {
        let policy_arg = exec
            .windows(2)
            .find(|w| w[0] == "-c" || w[0] == "--policy")
            .map(|w| PathBuf::from(&w[1]));
        if policy_arg.as_deref() != Some(policy.file.as_path()) {
            out.push(format!(
                "ExecStart runs warden without -c {}",
                policy.file.display()
            ));
        }
    } else {
        out.push(
            "ExecStart does not run `warden run`: no redaction of the service's output, no \
             integrity check or scan before start, no preflight refusals"
                .into(),
        );
    }
    out
}

/// `[Service]` (and `[Unit]`) assignments: key -> values in order; an empty assignment resets
/// a list, as systemd does.
fn parse_unit(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let full = std::mem::take(&mut pending) + line;
        let full = full.trim();
        if full.starts_with('[') && full.ends_with(']') {
            section = full[1..full.len() - 1].to_owned();
            continue;
        }
        if section != "Service" && section != "Unit" {
            continue;
        }
        if let Some((k, v)) = full.split_once('=') {
            let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
            let list = map.entry(k).or_default();
            if v.is_empty() {
                list.clear();
            }
            list.push(v);
        }
    }
    map
}

/// Splits a unit value into words, honouring double and single quotes and backslash escapes.
fn unit_words(v: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}

/// The problems of Kubernetes manifests for this policy (empty: none). `Err` when the text is
/// not YAML.
pub fn manifest(policy: &Policy, text: &str) -> Result<Vec<String>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let mut out = Vec::new();
    let mut pods = Vec::new();
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or("");
        let name = d["metadata"]["name"].as_str().unwrap_or("?").to_owned();
        let template = match kind {
            "Pod" => Some(d),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                Some(&d["spec"]["template"])
            }
            _ => None,
        };
        if let Some(t) = template {
            pods.push((format!("{kind} {name}"), t));
        }
    }
    if pods.is_empty() {
        out.push("no Deployment or Pod".into());
    }
    for (what, t) in &pods {
        pod(policy, what, t, &docs, &mut out);
    }
    Ok(out)
}

fn truthy(y: &Yaml) -> Option<bool> {
    y.as_bool()
}

fn pod(policy: &Policy, what: &str, t: &Yaml, docs: &[Yaml], out: &mut Vec<String>) {
    let spec = &t["spec"];
    let psc = &spec["securityContext"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if truthy(&spec[host]) == Some(true) {
            out.push(format!("{what}: {host} is true"));
        }
    }
    let sa_automount = docs
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("ServiceAccount")
                && d["metadata"]["name"].as_str() == spec["serviceAccountName"].as_str()
        })
        .and_then(|d| truthy(&d["automountServiceAccountToken"]));
    if truthy(&spec["automountServiceAccountToken"]).or(sa_automount) != Some(false) {
        out.push(format!("{what}: the service account token is mounted"));
    }
    let mut volumes: BTreeMap<String, &Yaml> = BTreeMap::new();
    for v in spec["volumes"].as_vec().into_iter().flatten() {
        if let Some(n) = v["name"].as_str() {
            volumes.insert(n.to_owned(), v);
        }
        if !v["hostPath"].is_badvalue() {
            out.push(format!(
                "{what}: volume {} is a hostPath",
                v["name"].as_str().unwrap_or("?")
            ));
        }
    }
    let containers = spec["containers"].as_vec().cloned().unwrap_or_default();
    if containers.is_empty() {
        out.push(format!("{what}: no containers"));
    }
    let mut runs_warden = false;
    for c in &containers {
        let cname = format!("{what} container {}", c["name"].as_str().unwrap_or("?"));
        let sc = &c["securityContext"];
        let either = |key: &str| {
            if sc[key].is_badvalue() {
                &psc[key]
            } else {
                &sc[key]
            }
        };
        if truthy(either("runAsNonRoot")) != Some(true) {
            out.push(format!("{cname}: runAsNonRoot is not true"));
        }
        if either("runAsUser").as_i64() == Some(0) {
            out.push(format!("{cname}: runAsUser is 0"));
        }
        if truthy(&sc["allowPrivilegeEscalation"]) != Some(false) {
            out.push(format!("{cname}: allowPrivilegeEscalation is not false"));
        }
        if truthy(&sc["privileged"]) == Some(true) {
            out.push(format!("{cname}: privileged"));
        }
        if truthy(&sc["readOnlyRootFilesystem"]) != Some(true) {
            out.push(format!("{cname}: readOnlyRootFilesystem is not true"));
        }
        let drops: Vec<&str> = sc["capabilities"]["drop"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(Yaml::as_str)
            .collect();
        if !drops.contains(&"ALL") {
            out.push(format!("{cname}: capabilities do not drop ALL"));
        }
        let adds: Vec<&str> = sc["capabilities"]["add"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(Yaml::as_str)
            .filter(|c| *c != "NET_BIND_SERVICE")
            .collect();
        if !adds.is_empty() {
            out.push(format!("{cname}: adds capabilities {}", adds.join(", ")));
        }
        let seccomp = either("seccompProfile")["type"].as_str().unwrap_or("");
        if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
            out.push(format!("{cname}: seccompProfile is not RuntimeDefault"));
        }
        let argv: Vec<&str> = c["command"]
            .as_vec()
            .into_iter()
            .chain(c["args"].as_vec())
            .flatten()
            .filter_map(Yaml::as_str)
            .collect();
        if argv
            .first()
            .is_some_and(|p| Path::new(p).file_name() == Some("warden".as_ref()))
            && argv.contains(&"run")
        {
            runs_warden = true;
        }
        mounts(policy, &cname, c, &volumes, out);
    }
    if !containers.is_empty() && !runs_warden {
        out.push(format!(
            "{what}: no container runs `warden run` as its entrypoint: no redaction of the \
             service's output, no integrity check or scan before start"
        ));
    }
    let labels = t["metadata"]["labels"].as_hash();
    let selected = docs.iter().any(|d| {
        d["kind"].as_str() == Some("NetworkPolicy")
            && d["spec"]["podSelector"]["matchLabels"]
                .as_hash()
                .is_some_and(|want| {
                    want.iter()
                        .all(|(k, v)| labels.is_some_and(|l| l.get(k) == Some(v)))
                })
    });
    if !selected {
        out.push(format!("{what}: no NetworkPolicy selects its pods"));
    }
}

/// The tiers read-only, the private directories writable, in one container.
fn mounts(
    policy: &Policy,
    cname: &str,
    c: &Yaml,
    volumes: &BTreeMap<String, &Yaml>,
    out: &mut Vec<String>,
) {
    // (path, writable)
    let list: Vec<(PathBuf, bool)> = c["volumeMounts"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let path = PathBuf::from(m["mountPath"].as_str()?);
            let vol = m["name"].as_str().and_then(|n| volumes.get(n));
            let vol_ro = vol.is_some_and(|v| {
                truthy(&v["persistentVolumeClaim"]["readOnly"]) == Some(true)
                    || !v["configMap"].is_badvalue()
                    || !v["secret"].is_badvalue()
            });
            let ro = truthy(&m["readOnly"]) == Some(true) || vol_ro;
            Some((path, !ro))
        })
        .collect();
    // The most specific mount that covers a path decides; none: the root file system.
    let covering = |p: &Path| {
        list.iter()
            .filter(|(m, _)| p.starts_with(m))
            .max_by_key(|(m, _)| m.components().count())
    };
    let root_ro = truthy(&c["securityContext"]["readOnlyRootFilesystem"]) == Some(true);
    for t in policy.read_only_tiers() {
        let writable = covering(&t.path).map_or(!root_ro, |(_, w)| *w);
        if writable {
            out.push(format!(
                "{cname}: the read-only tier {} is writable",
                t.path.display()
            ));
        }
        if let Some((m, _)) = list
            .iter()
            .find(|(m, w)| *w && m.starts_with(&t.path) && m != &t.path)
        {
            out.push(format!(
                "{cname}: a writable volume is mounted at {} inside the read-only tier {}",
                m.display(),
                t.path.display()
            ));
        }
    }
    let private = [&policy.logs_dir, &policy.tmp_dir, &policy.state_dir];
    let rw_tiers = policy
        .tiers
        .iter()
        .filter(|t| t.access == Access::ReadWrite)
        .map(|t| &t.path);
    for d in private.into_iter().chain(rw_tiers) {
        let writable = covering(d).map_or(!root_ro, |(_, w)| *w);
        if !writable {
            out.push(format!(
                "{cname}: {} is not writable: warden and the service cannot start",
                d.display()
            ));
        }
    }
}

/// What to check: a unit or manifests, as a check of `warden check` (one finding listing
/// every problem).
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub kind: Kind,
    pub path: PathBuf,
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unit,
    Manifest,
}

impl FileCheck {
    pub fn new(kind: Kind, path: &Path) -> Self {
        let what = match kind {
            Kind::Unit => "systemd unit",
            Kind::Manifest => "Kubernetes manifest",
        };
        Self {
            kind,
            path: path.to_owned(),
            name: format!("{what} {}", crate::term::path(path)),
        }
    }
}

impl crate::supervise::PreStart for FileCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, policy: &Policy) -> Result<(), String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", crate::term::path(&self.path)))?;
        let problems = match self.kind {
            Kind::Unit => unit(policy, &text),
            Kind::Manifest => manifest(policy, &text)?,
        };
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} problem{}: {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            crate::term::escape(&problems.join("; "))
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_systemd_quoting() {
        assert_eq!(
            unit_words(r#"/bin/x -c "/a b/w.toml" 'q r' a\ b"#),
            ["/bin/x", "-c", "/a b/w.toml", "q r", "a b"]
        );
        assert_eq!(unit_words(""), Vec::<String>::new());
        assert_eq!(unit_words(r#""""#), [""]);
    }

    #[test]
    fn empty_assignments_reset_and_lines_continue() {
        let u = parse_unit(
            "[Service]\nReadWritePaths=/a\nReadWritePaths=\nReadWritePaths=/b \\\n  /c\n\
             # User=root\n[Install]\nUser=x\n",
        );
        assert_eq!(u["ReadWritePaths"], ["", "/b  /c"]);
        assert!(!u.contains_key("User"));
    }
}
