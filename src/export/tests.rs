use std::path::PathBuf;

use super::k8s;
use super::systemd::{self, Jit};
use super::yaml::Node;
use crate::policy::Policy;

const SERVICE: &str = r#"[service]
name = "image-edit"
command = ["bin/app", "--server-name", "127.0.0.1", "--server-port", "7860"]
user = "aiuser"
group = "aiusers"
listen = ["127.0.0.1:7860"]
env = { HF_HUB_OFFLINE = "1", NOTE = "50% off $HOME" }
stop-timeout = "10s"
restart = { policy = "on-failure", max = 5, within = "10m" }
ready = { http = "http://127.0.0.1:7860/healthz", timeout = "30s" }
"#;

const TIERS: &str = r#"
[[tier]]
path = "bin"
mode = "0550"
[[tier]]
path = "models/Qwen"
[[tier]]
path = "outputs"
access = "read-write"
"#;

fn policy(service: &str, extra: &str) -> (tempfile::TempDir, Policy) {
    let d = tempfile::tempdir().unwrap();
    for sub in ["bin", "models/Qwen", "outputs"] {
        std::fs::create_dir_all(d.path().join(sub)).unwrap();
    }
    let file = d.path().canonicalize().unwrap().join("warden.toml");
    let text = format!("{service}{TIERS}{extra}");
    let p = Policy::from_str(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    (d, p)
}

fn opts(version: u32) -> systemd::Options {
    systemd::Options {
        version,
        warden: Some(PathBuf::from("/usr/local/bin/warden")),
        jit: Jit::Auto,
    }
}

/// The values of a directive, in order (commented-out lines excluded).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn one<'a>(unit: &'a str, key: &str) -> &'a str {
    let v = values(unit, key);
    assert_eq!(v.len(), 1, "{key}: {v:?}\n{unit}");
    v[0]
}

#[test]
fn unit_runs_warden_as_the_account_with_systemds_sandbox() {
    let (_d, p) = policy(SERVICE, "");
    let e = systemd::unit(&p, &opts(252)).unwrap();
    let u = &e.text;
    let root = p.root.to_string_lossy();
    assert_eq!(
        one(u, "ExecStart"),
        format!("/usr/local/bin/warden -c {root}/warden.toml run --no-echo")
    );
    assert_eq!(one(u, "User"), "aiuser");
    assert_eq!(one(u, "Group"), "aiusers");
    assert_eq!(one(u, "Type"), "exec");
    assert_eq!(one(u, "WorkingDirectory"), root);
    assert_eq!(one(u, "ProtectSystem"), "strict");
    assert_eq!(
        one(u, "ReadWritePaths"),
        format!("{root}/logs {root}/tmp {root}/state {root}/outputs")
    );
    assert_eq!(
        one(u, "ReadOnlyPaths"),
        format!("{root}/bin {root}/models/Qwen")
    );
    assert_eq!(
        one(u, "NoExecPaths"),
        format!("{root}/tmp {root}/logs {root}/state")
    );
    assert_eq!(one(u, "CapabilityBoundingSet"), "");
    assert_eq!(one(u, "AmbientCapabilities"), "");
    assert_eq!(one(u, "PrivateDevices"), "yes");
    assert_eq!(one(u, "DevicePolicy"), "closed");
    assert!(values(u, "DeviceAllow").is_empty());
    assert_eq!(one(u, "PrivateUsers"), "yes");
    assert_eq!(one(u, "MemoryDenyWriteExecute"), "yes");
    assert_eq!(one(u, "ProcSubset"), "pid");
    assert_eq!(one(u, "IPAddressDeny"), "any");
    assert_eq!(one(u, "IPAddressAllow"), "localhost");
    assert_eq!(one(u, "SocketBindAllow"), "tcp:7860");
    assert_eq!(one(u, "SocketBindDeny"), "any");
    assert_eq!(
        values(u, "SystemCallFilter"),
        [
            "@system-service",
            "~@privileged @resources",
            "landlock_create_ruleset landlock_add_rule landlock_restrict_self"
        ]
    );
    assert_eq!(one(u, "Restart"), "on-abnormal");
    assert_eq!(one(u, "StartLimitBurst"), "6");
    assert_eq!(one(u, "StartLimitIntervalSec"), "600s");
    assert_eq!(one(u, "TimeoutStopSec"), "25s");
    assert_eq!(one(u, "KillMode"), "mixed");
    assert_eq!(one(u, "LimitCORE"), "0");
    assert_eq!(one(u, "UMask"), "0077");
    assert_eq!(
        values(u, "AssertPathIsDirectory"),
        [
            format!("{root}/logs"),
            format!("{root}/tmp"),
            format!("{root}/state")
        ]
    );
    // Not known to 252: written as a comment, not as a directive.
    assert!(values(u, "PrivatePIDs").is_empty());
    assert!(u.contains("#PrivatePIDs=yes  (needs systemd 257)"), "{u}");
    assert!(!e.notes.iter().any(|n| n.contains("PrivatePIDs")));
    // integrity.verify is on: warden, running as the account, needs a manifest it owns.
    assert!(u.contains("runuser -u aiuser -- warden"), "{u}");
    assert!(e.notes.iter().any(|n| n.contains("seal as the account")));
    // warden builds the environment itself.
    assert!(values(u, "Environment").is_empty());
    // The deployment is under /tmp here: the operator is told.
    assert!(
        e.notes.iter().any(|n| n.contains("PrivateTmp")),
        "{:?}",
        e.notes
    );
}

#[test]
fn directives_newer_than_the_target_become_comments() {
    let (_d, p) = policy(SERVICE, "");
    let old = systemd::unit(&p, &opts(240)).unwrap().text;
    for key in [
        "ProtectClock",
        "ProtectHostname",
        "RestrictSUIDSGID",
        "ProtectKernelLogs",
        "ProtectProc",
        "ProcSubset",
        "NoExecPaths",
        "PrivateIPC",
        "SocketBindAllow",
        "SocketBindDeny",
    ] {
        assert!(values(&old, key).is_empty(), "{key} in a unit for 240");
        assert!(old.contains(&format!("#{key}=")), "{key} not commented");
    }
    assert_eq!(one(&old, "Type"), "exec");
    assert_eq!(one(&old, "ProtectSystem"), "strict");
    let older = systemd::unit(&p, &opts(235)).unwrap().text;
    assert_eq!(one(&older, "Type"), "simple");
    assert!(values(&older, "SystemCallFilter").contains(&"~@privileged @resources"));
    assert!(!values(&older, "SystemCallFilter").contains(&"@system-service"));
    let new = systemd::unit(&p, &opts(257)).unwrap().text;
    assert_eq!(one(&new, "PrivatePIDs"), "yes");
    assert_eq!(one(&new, "RestartSec"), "1s");
    assert!(
        values(&new, "RestartSteps").is_empty(),
        "warden does the backoff"
    );
}

#[test]
fn no_warden_puts_the_command_and_environment_in_the_unit() {
    let (_d, p) = policy(SERVICE, "");
    let mut o = opts(254);
    o.warden = None;
    let e = systemd::unit(&p, &o).unwrap();
    let u = &e.text;
    let root = p.root.to_string_lossy();
    assert_eq!(
        one(u, "ExecStart"),
        format!("{root}/bin/app --server-name 127.0.0.1 --server-port 7860")
    );
    let env = values(u, "Environment");
    assert!(env.contains(&"HF_HUB_OFFLINE=1"), "{env:?}");
    assert!(
        env.contains(&format!("TMPDIR={root}/tmp").as_str()),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("HOME={root}/state").as_str()),
        "{env:?}"
    );
    // % is a specifier; inside quotes the value is one assignment.
    assert!(env.contains(&"\"NOTE=50%% off $HOME\""), "{env:?}");
    assert_eq!(one(u, "Restart"), "on-failure");
    assert_eq!(one(u, "RestartSec"), "500ms");
    assert_eq!(one(u, "RestartSteps"), "6");
    assert_eq!(one(u, "RestartMaxDelaySec"), "30s");
    assert_eq!(one(u, "KillMode"), "control-group");
    assert_eq!(one(u, "TimeoutStopSec"), "10s");
    assert!(values(u, "AssertPathExists").is_empty());
    // No warden, no Landlock: the filter does not open its calls.
    assert_eq!(values(u, "SystemCallFilter").len(), 2);
    assert!(
        u.contains("no redaction"),
        "the trade-off is stated in the unit"
    );
}

#[test]
fn command_arguments_are_quoted_for_systemd() {
    let svc = SERVICE.replace(
        r#"command = ["bin/app", "--server-name", "127.0.0.1", "--server-port", "7860"]"#,
        r#"command = ["python3", "app.py", "--title", "a \"b\" c", "--cost", "$5 100%", ";"]"#,
    );
    let (_d, p) = policy(&svc, "");
    let mut o = opts(252);
    o.warden = None;
    let u = systemd::unit(&p, &o).unwrap().text;
    let exec = one(&u, "ExecStart");
    assert!(
        exec.ends_with(r#"app.py --title "a \"b\" c" --cost "$$5 100%%" ";""#),
        "{exec}"
    );
    assert!(
        exec.starts_with('/') || exec.starts_with("python3 "),
        "{exec}"
    );
}

#[test]
fn gpu_presets_open_their_devices_only() {
    let svc = SERVICE.replace(
        "listen = [\"127.0.0.1:7860\"]",
        "listen = [\"127.0.0.1:7860\"]\ngroups = [\"video\"]",
    );
    let (_d, p) = policy(&svc, "[sandbox]\ndevices = [\"nvidia\", \"dri\"]\n");
    let e = systemd::unit(&p, &opts(252)).unwrap();
    let u = &e.text;
    assert_eq!(one(u, "PrivateDevices"), "no");
    assert_eq!(one(u, "DevicePolicy"), "closed");
    assert_eq!(
        values(u, "DeviceAllow"),
        [
            "char-nvidia-frontend rw",
            "char-nvidia-uvm rw",
            "char-nvidia-caps rw",
            "char-drm rw",
            "char-kfd rw"
        ]
    );
    assert_eq!(one(u, "SupplementaryGroups"), "video");
    assert!(
        values(u, "PrivateUsers").is_empty(),
        "groups are not mapped"
    );
    assert!(values(u, "MemoryDenyWriteExecute").is_empty());
    assert_eq!(one(u, "ProcSubset"), "all");
    assert_eq!(
        one(u, "NoExecPaths"),
        format!("{0}/tmp {0}/logs", p.root.display())
    );
    let mut o = opts(252);
    o.jit = Jit::Deny;
    let denied = systemd::unit(&p, &o).unwrap().text;
    assert_eq!(one(&denied, "MemoryDenyWriteExecute"), "yes");
}

#[test]
fn a_public_listener_gets_no_ip_allow_list() {
    let svc = SERVICE
        .replace("127.0.0.1:7860\"]", "0.0.0.0:7860\", \"[::]:7861\"]")
        .replace("\"127.0.0.1\"", "\"0.0.0.0\"");
    let (_d, p) = policy(&svc, "");
    let u = systemd::unit(&p, &opts(252)).unwrap().text;
    assert!(values(&u, "IPAddressDeny").is_empty());
    assert_eq!(values(&u, "SocketBindAllow"), ["tcp:7860", "tcp:7861"]);
}

#[test]
fn a_relative_warden_binary_is_refused() {
    let (_d, p) = policy(SERVICE, "");
    let mut o = opts(252);
    o.warden = Some(PathBuf::from("target/debug/warden"));
    let err = systemd::unit(&p, &o).unwrap_err().to_string();
    assert!(err.contains("absolute"), "{err}");
}

#[test]
fn systemd_version_is_parsed() {
    assert_eq!(
        systemd::parse_version("systemd 252 (252.39-1~deb12u2)\n+PAM"),
        Some(252)
    );
    assert_eq!(systemd::parse_version("systemd 256.5\n"), Some(256));
    assert_eq!(systemd::parse_version("bash: systemd: not found"), None);
}

fn k8s_opts(p: &Policy) -> k8s::Options {
    k8s::Options {
        policy_text: std::fs::read_to_string(&p.file).unwrap_or_else(|_| SERVICE.to_owned()),
        image: Some("registry.invalid/image-edit:1.0".into()),
        digest: Some(format!("sha256:{}", "ab".repeat(32))),
        ..k8s::Options::default()
    }
}

fn doc<'a>(docs: &'a [Node], kind: &str) -> &'a Node {
    docs.iter()
        .find(|d| d.get("kind").and_then(Node::as_str) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn s<'a>(n: &'a Node, path: &[&str]) -> &'a str {
    n.at(path)
        .and_then(Node::as_str)
        .unwrap_or_else(|| panic!("no string at {path:?} in {n:?}"))
}

fn seq(n: &Node, path: &[&str]) -> Vec<Node> {
    match n.at(path) {
        Some(Node::Seq(v)) => v.clone(),
        other => panic!("no sequence at {path:?}: {other:?}"),
    }
}

fn strs(items: &[Node]) -> Vec<&str> {
    items.iter().map(|n| n.as_str().unwrap()).collect()
}

#[test]
fn manifests_meet_the_restricted_profile() {
    let (_d, p) = policy(SERVICE, "");
    let (docs, notes) = k8s::documents(&p, &k8s_opts(&p)).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| s(d, &["kind"])).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "NetworkPolicy"
        ]
    );
    let ns = doc(&docs, "Namespace");
    assert_eq!(
        s(
            ns,
            &["metadata", "labels", "pod-security.kubernetes.io/enforce"]
        ),
        "restricted"
    );
    for d in &docs[1..] {
        assert_eq!(s(d, &["metadata", "namespace"]), "image-edit");
    }
    assert_eq!(
        doc(&docs, "ServiceAccount").get("automountServiceAccountToken"),
        Some(&Node::Bool(false))
    );
    let pod = doc(&docs, "Deployment")
        .at(&["spec", "template", "spec"])
        .unwrap();
    assert_eq!(
        pod.get("automountServiceAccountToken"),
        Some(&Node::Bool(false))
    );
    assert_eq!(
        pod.at(&["securityContext", "runAsNonRoot"]),
        Some(&Node::Bool(true))
    );
    assert_eq!(
        pod.at(&["securityContext", "runAsUser"]),
        Some(&Node::Int(10001))
    );
    assert_eq!(
        s(pod, &["securityContext", "seccompProfile", "type"]),
        "RuntimeDefault"
    );
    let c = pod.at(&["containers", "0"]).unwrap();
    let sc = c.get("securityContext").unwrap();
    assert_eq!(sc.get("allowPrivilegeEscalation"), Some(&Node::Bool(false)));
    assert_eq!(sc.get("readOnlyRootFilesystem"), Some(&Node::Bool(true)));
    assert_eq!(sc.get("privileged"), Some(&Node::Bool(false)));
    assert_eq!(sc.get("runAsNonRoot"), Some(&Node::Bool(true)));
    assert_eq!(strs(&seq(sc, &["capabilities", "drop"])), ["ALL"]);
    assert_eq!(s(sc, &["seccompProfile", "type"]), "RuntimeDefault");
    assert_eq!(s(c, &["imagePullPolicy"]), "Always");
    assert_eq!(
        s(c, &["image"]),
        format!("registry.invalid/image-edit:1.0@sha256:{}", "ab".repeat(32))
    );
    assert_eq!(strs(&seq(c, &["command"])), ["warden", "run"]);
    assert_eq!(s(c, &["env", "0", "value"]), p.file.to_string_lossy());
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(c.at(&["resources", r, k]).is_some(), "{r}.{k}");
        }
    }
    assert!(c.at(&["resources", "limits", "nvidia.com/gpu"]).is_none());
    // Loopback only: the kubelet cannot reach it, so warden probes from inside.
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            strs(&seq(c, &[probe, "exec", "command"])),
            ["warden", "status", "--ready"],
            "{probe}"
        );
    }
    assert!(notes.iter().any(|n| n.contains("loopback")));

    // Every tier and private directory has its mount; only the tiers and policy are read-only.
    let mounts = seq(c, &["volumeMounts"]);
    let root = p.root.to_string_lossy();
    for (path, ro, volume) in [
        (format!("{root}/bin"), true, "weights"),
        (format!("{root}/models/Qwen"), true, "weights"),
        (format!("{root}/outputs"), false, "data-1"),
        (format!("{root}/logs"), false, "logs"),
        (format!("{root}/tmp"), false, "private-tmp"),
        (format!("{root}/state"), false, "state"),
        (format!("{root}/warden.toml"), true, "policy"),
        ("/tmp".to_owned(), false, "tmp"),
        ("/dev/shm".to_owned(), false, "dshm"),
    ] {
        let m = mounts
            .iter()
            .find(|m| s(m, &["mountPath"]) == path)
            .unwrap_or_else(|| panic!("no mount at {path}"));
        assert_eq!(m.get("readOnly") == Some(&Node::Bool(true)), ro, "{path}");
        assert_eq!(s(m, &["name"]), volume, "{path}");
    }
    // integrity.verify is on (the default): the manifest comes read-only from the claim.
    let manifest = mounts
        .iter()
        .find(|m| s(m, &["mountPath"]) == format!("{root}/state/integrity/manifest.json"))
        .expect("manifest mount");
    assert_eq!(s(manifest, &["subPath"]), k8s::MANIFEST_IN_CLAIM);
    assert_eq!(manifest.get("readOnly"), Some(&Node::Bool(true)));
    assert!(notes.iter().any(|n| n.contains(k8s::MANIFEST_IN_CLAIM)));
    let volumes = seq(pod, &["volumes"]);
    let vol = |name: &str| {
        volumes
            .iter()
            .find(|v| s(v, &["name"]) == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert_eq!(s(&vol("dshm"), &["emptyDir", "medium"]), "Memory");
    assert_eq!(
        vol("weights").at(&["persistentVolumeClaim", "readOnly"]),
        Some(&Node::Bool(true))
    );
    let pvc = doc(&docs, "PersistentVolumeClaim");
    assert_eq!(strs(&seq(pvc, &["spec", "accessModes"])), ["ReadOnlyMany"]);

    let np = doc(&docs, "NetworkPolicy");
    assert_eq!(
        strs(&seq(np, &["spec", "policyTypes"])),
        ["Ingress", "Egress"]
    );
    assert!(seq(np, &["spec", "egress"]).is_empty());
    assert_eq!(
        s(
            np,
            &[
                "spec",
                "ingress",
                "0",
                "from",
                "0",
                "podSelector",
                "matchLabels",
                "image-edit-client"
            ]
        ),
        "true"
    );
    assert_eq!(
        np.at(&["spec", "ingress", "0", "ports", "0", "port"]),
        Some(&Node::Int(7860))
    );
    let svc = doc(&docs, "Service");
    assert_eq!(
        svc.at(&["spec", "ports", "0", "port"]),
        Some(&Node::Int(7860))
    );
}

#[test]
fn a_public_listener_is_probed_over_http_and_a_gpu_is_requested() {
    let svc = SERVICE
        .replace("127.0.0.1:7860\"]", "0.0.0.0:7860\"]")
        .replace("\"127.0.0.1\"", "\"0.0.0.0\"");
    let (_d, p) = policy(
        &svc,
        "[sandbox]\ndevices = [\"nvidia\"]\n[integrity]\nverify = \"off\"\n",
    );
    let mut o = k8s_opts(&p);
    o.gpus = 2;
    o.replicas = 2;
    let (docs, _) = k8s::documents(&p, &o).unwrap();
    let pod = doc(&docs, "Deployment")
        .at(&["spec", "template", "spec"])
        .unwrap();
    let c = pod.at(&["containers", "0"]).unwrap();
    assert_eq!(s(c, &["readinessProbe", "httpGet", "path"]), "/healthz");
    assert_eq!(
        c.at(&["readinessProbe", "httpGet", "port"]),
        Some(&Node::Int(7860))
    );
    // startupProbe allows the ready timeout (30s at 5s intervals), and one more.
    assert_eq!(
        c.at(&["startupProbe", "failureThreshold"]),
        Some(&Node::Int(7))
    );
    assert_eq!(
        c.at(&["resources", "limits", "nvidia.com/gpu"]),
        Some(&Node::Int(2))
    );
    assert_eq!(s(pod, &["tolerations", "0", "key"]), "nvidia.com/gpu");
    assert_eq!(
        s(doc(&docs, "Deployment"), &["spec", "strategy", "type"]),
        "Recreate"
    );
    // No verification, no manifest to bring along.
    assert!(
        !seq(c, &["volumeMounts"])
            .iter()
            .any(|m| s(m, &["mountPath"]).ends_with("manifest.json"))
    );
    let pdb = doc(&docs, "PodDisruptionBudget");
    assert_eq!(pdb.at(&["spec", "maxUnavailable"]), Some(&Node::Int(1)));
}

#[test]
fn bad_options_are_refused() {
    let (_d, p) = policy(SERVICE, "");
    let base = k8s_opts(&p);
    let cases: Vec<(k8s::Options, &str)> = vec![
        (
            k8s::Options {
                uid: 0,
                ..base.clone()
            },
            "--uid",
        ),
        (
            k8s::Options {
                namespace: Some("default".into()),
                ..base.clone()
            },
            "--namespace",
        ),
        (
            k8s::Options {
                memory: "lots".into(),
                ..base.clone()
            },
            "--memory",
        ),
        (
            k8s::Options {
                digest: Some("md5:00".into()),
                ..base.clone()
            },
            "--digest",
        ),
    ];
    for (o, flag) in cases {
        let err = k8s::manifests(&p, &o).unwrap_err().to_string();
        assert!(err.contains(flag), "{err}");
    }
}

#[test]
fn names_and_quantities() {
    assert_eq!(k8s::dns_label("Image_Edit.v2@gpu"), "image-edit-v2-gpu");
    assert_eq!(k8s::dns_label("__"), "service");
    for q in ["1", "500m", "8Gi", "1.5", "100M"] {
        assert!(k8s::is_quantity(q), "{q}");
    }
    for q in ["", "Gi", "1.", ".5", "8 Gi", "8gb", "-1"] {
        assert!(!k8s::is_quantity(q), "{q}");
    }
}

#[test]
fn the_policy_travels_in_the_config_map_verbatim() {
    let (_d, p) = policy(SERVICE, "");
    let mut o = k8s_opts(&p);
    o.policy_text = format!("{SERVICE}{TIERS}");
    let t = k8s::manifests(&p, &o).unwrap().text;
    let at = t.find("  warden.toml: |\n").expect("literal block");
    let mut back = String::new();
    for line in t[at..].lines().skip(1) {
        if line.is_empty() {
            back.push('\n');
        } else if let Some(l) = line.strip_prefix("    ") {
            back.push_str(l);
            back.push('\n');
        } else {
            break;
        }
    }
    assert_eq!(back.trim_end(), o.policy_text.trim_end());
}

#[test]
fn an_exported_unit_checks_clean_and_edits_are_found() {
    use super::check;
    let (_d, p) = policy(SERVICE, "");
    let u = systemd::unit(&p, &opts(252)).unwrap().text;
    assert_eq!(check::unit(&p, &u), Vec::<String>::new());
    let mut bare = opts(252);
    bare.warden = None;
    let b = systemd::unit(&p, &bare).unwrap().text;
    let problems = check::unit(&p, &b);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("does not run `warden run`"));

    let root = p.root.display().to_string();
    let edited = u
        .replace("NoNewPrivileges=yes\n", "")
        .replace("User=aiuser", "User=root")
        .replace(
            "CapabilityBoundingSet=\n",
            "CapabilityBoundingSet=CAP_NET_ADMIN\n",
        )
        .replace("UMask=0077", "UMask=0022")
        .replace("ProtectSystem=strict", "ProtectSystem=full")
        .replace(
            &format!("ReadWritePaths={root}/logs"),
            &format!("ReadWritePaths={root} {root}/logs"),
        )
        .replace(
            &format!("ReadOnlyPaths={root}/bin {root}/models/Qwen\n"),
            "",
        );
    let problems = check::unit(&p, &edited).join("\n");
    for needle in [
        "User=root",
        "NoNewPrivileges",
        "CapabilityBoundingSet",
        "UMask",
        "ProtectSystem=strict",
        "models/Qwen is writable through ReadWritePaths",
        "bin is writable through ReadWritePaths",
    ] {
        assert!(problems.contains(needle), "{needle:?} not in\n{problems}");
    }
    // A tier made read-only again by a more specific ReadOnlyPaths= is fine.
    let fixed = edited.replace(
        &format!("ReadWritePaths={root} "),
        &format!("ReadOnlyPaths={root}/bin {root}/models/Qwen\nReadWritePaths={root} "),
    );
    assert!(
        !check::unit(&p, &fixed)
            .join("\n")
            .contains("writable through")
    );
}

#[test]
fn exported_manifests_check_clean_and_edits_are_found() {
    use super::check;
    let (_d, p) = policy(SERVICE, "");
    let t = k8s::manifests(&p, &k8s_opts(&p)).unwrap().text;
    assert_eq!(check::manifest(&p, &t).unwrap(), Vec::<String>::new());
    let edited = t
        .replace(
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
        )
        .replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
        .replace("automountServiceAccountToken: false", "automountServiceAccountToken: true")
        .replace("            - warden\n            - run\n", "            - python3\n")
        .replace(
            "          persistentVolumeClaim:\n            claimName: image-edit-weights\n            readOnly: true\n",
            "          persistentVolumeClaim:\n            claimName: image-edit-weights\n",
        )
        .replace(
            "              subPath: models/Qwen\n              readOnly: true\n",
            "              subPath: models/Qwen\n",
        )
        .replace("kind: NetworkPolicy", "kind: NetworkPolicyX");
    let problems = check::manifest(&p, &edited).unwrap().join("\n");
    for needle in [
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "token is mounted",
        "`warden run`",
        "models/Qwen is writable",
        "no NetworkPolicy",
    ] {
        assert!(problems.contains(needle), "{needle:?} not in\n{problems}");
    }
    assert!(!problems.contains("bin is writable"), "{problems}");
    assert!(check::manifest(&p, "a: [").is_err());
    assert_eq!(
        check::manifest(&p, "kind: ConfigMap\n").unwrap(),
        ["no Deployment or Pod"]
    );
}
