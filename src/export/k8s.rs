//! `warden export k8s`: the manifests a careful operator applies for one model service.
//!
//! - a Namespace labelled to enforce the Pod Security Standards "restricted" profile;
//! - a ServiceAccount that mounts no API token;
//! - a ConfigMap holding the policy file, mounted where the policy expects to be (its
//!   relative paths resolve against the deployment root, the same path as on the host);
//! - a PersistentVolumeClaim for the read-only tiers (the weights), each tier mounted read-only
//!   at its path from the claim (`subPath` = the tier's path in the deployment);
//! - a Deployment whose only container runs `warden run` as its entrypoint (PID 1, no root,
//!   the service's redacted output on stdout for the cluster's log collector), with a read-only
//!   root file system, emptyDir volumes for the private directories, /tmp and /dev/shm,
//!   resources, probes derived from `service.ready`, and a GPU when the policy has one;
//! - a Service for the listen ports and a NetworkPolicy: ingress only from labelled client pods
//!   to those ports, no egress;
//! - a PodDisruptionBudget when there is more than one replica.

use std::path::Path;

use super::yaml::Node;
use super::{Export, ExportError, loopback_only, ports, ready_target};
use crate::policy::schema::DevicePreset;
use crate::policy::{Access, Policy};

/// Where warden is expected in the image (on its PATH).
pub const WARDEN_IN_IMAGE: &str = "warden";

/// How to export.
#[derive(Debug, Clone)]
pub struct Options {
    /// The policy file's text, for the ConfigMap.
    pub policy_text: String,
    /// The image, `NAME[:TAG]` or `NAME@sha256:...`.
    pub image: Option<String>,
    /// `sha256:HEX`, appended to the image.
    pub digest: Option<String>,
    /// Defaults to the service's name.
    pub namespace: Option<String>,
    /// The numeric account the container runs as (never 0).
    pub uid: u32,
    pub gid: u32,
    /// Requests (and limits) as Kubernetes quantities.
    pub cpu: String,
    pub cpu_limit: String,
    pub memory: String,
    /// GPUs to request when the policy has a device preset.
    pub gpus: u32,
    /// The device plugin's resource name; defaults from the preset (`nvidia.com/gpu`).
    pub gpu_resource: Option<String>,
    pub replicas: u32,
    /// An existing claim holding the read-only tiers; `None` writes a new one.
    pub weights_claim: Option<String>,
    /// The size of the claim written when `weights_claim` is `None`.
    pub weights_size: String,
    /// The size of the memory-backed /dev/shm.
    pub shm_size: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy_text: String::new(),
            image: None,
            digest: None,
            namespace: None,
            uid: DEFAULT_UID,
            gid: DEFAULT_UID,
            cpu: "1".into(),
            cpu_limit: "4".into(),
            memory: "8Gi".into(),
            gpus: 1,
            gpu_resource: None,
            replicas: 1,
            weights_claim: None,
            weights_size: "100Gi".into(),
            shm_size: "1Gi".into(),
        }
    }
}

/// The default numeric account: high enough not to collide with a host account.
pub const DEFAULT_UID: u32 = 10001;

/// The label a pod needs for the NetworkPolicy to let it reach the service.
pub fn client_label(name: &str) -> String {
    format!("{name}-client")
}

/// Writes the manifests.
pub fn manifests(policy: &Policy, opts: &Options) -> Result<Export, ExportError> {
    let (docs, notes) = documents(policy, opts)?;
    let mut text = format!(
        "# Written by `warden export k8s` from {}.\n\
         # The image must hold warden on its PATH and the deployment at {} (the read-only tiers\n\
         # come from the volume claim). Apply with `kubectl apply -f FILE`.\n",
        crate::term::escape(&policy.file.to_string_lossy()).replace('\n', " "),
        crate::term::escape(&policy.root.to_string_lossy()).replace('\n', " "),
    );
    text.push_str(&super::yaml::documents(&docs));
    Ok(Export { text, notes })
}

/// The manifests as documents, and the remarks for the operator.
pub fn documents(policy: &Policy, opts: &Options) -> Result<(Vec<Node>, Vec<String>), ExportError> {
    let mut notes = Vec::new();
    let name = dns_label(&policy.service.name);
    if name != policy.service.name {
        notes.push(format!(
            "service name {:?} is not a DNS label: the objects are named {name:?}",
            policy.service.name
        ));
    }
    let ns = match &opts.namespace {
        Some(n) => {
            if dns_label(n) != *n || n == "default" {
                return Err(bad(
                    "--namespace",
                    n,
                    "use a DNS label other than \"default\"",
                ));
            }
            n.clone()
        }
        None => name.clone(),
    };
    if opts.uid == 0 || opts.gid == 0 {
        return Err(bad(
            "--uid/--gid",
            &format!("{}:{}", opts.uid, opts.gid),
            "the container never runs as root",
        ));
    }
    for (flag, q) in [
        ("--cpu", &opts.cpu),
        ("--cpu-limit", &opts.cpu_limit),
        ("--memory", &opts.memory),
        ("--weights-size", &opts.weights_size),
        ("--shm-size", &opts.shm_size),
    ] {
        if !is_quantity(q) {
            return Err(bad(
                flag,
                q,
                "expected a Kubernetes quantity like 500m, 2, 8Gi",
            ));
        }
    }
    if opts.replicas == 0 {
        return Err(bad("--replicas", "0", "at least one"));
    }
    let image = image_ref(opts, &name, &mut notes)?;

    let labels = Node::map()
        .with("app.kubernetes.io/name", &name)
        .with("app.kubernetes.io/instance", &name)
        .with("app.kubernetes.io/component", "model-server")
        .with("app.kubernetes.io/managed-by", "warden");
    let selector = Node::map()
        .with("app.kubernetes.io/name", &name)
        .with("app.kubernetes.io/instance", &name);
    let meta = |n: &str| {
        Node::map()
            .with("name", n)
            .with("namespace", &ns)
            .with("labels", labels.clone())
    };

    let mut docs = Vec::new();
    docs.push(namespace(&ns));
    docs.push(
        Node::map()
            .with("apiVersion", "v1")
            .with("kind", "ServiceAccount")
            .with("metadata", meta(&name))
            .with("automountServiceAccountToken", false),
    );
    let config = format!("{name}-policy");
    docs.push(
        Node::map()
            .with("apiVersion", "v1")
            .with("kind", "ConfigMap")
            .with("metadata", meta(&config))
            .with(
                "data",
                Node::map().with(crate::policy::DEFAULT_FILE, opts.policy_text.as_str()),
            ),
    );
    let ro: Vec<_> = policy.read_only_tiers().collect();
    let claim = match (&opts.weights_claim, ro.is_empty()) {
        (_, true) => None,
        (Some(c), false) => Some(c.clone()),
        (None, false) => {
            let c = format!("{name}-weights");
            docs.push(
                Node::map()
                    .with("apiVersion", "v1")
                    .with("kind", "PersistentVolumeClaim")
                    .with("metadata", meta(&c))
                    .with(
                        "spec",
                        Node::map()
                            .with("accessModes", vec![Node::from("ReadOnlyMany")])
                            .with("volumeMode", "Filesystem")
                            .with(
                                "resources",
                                Node::map().with(
                                    "requests",
                                    Node::map().with("storage", &opts.weights_size),
                                ),
                            ),
                    ),
            );
            notes.push(format!(
                "PersistentVolumeClaim {c}: fill it with the read-only tiers at their paths in \
                 the deployment ({}), readable by gid {}; or pass --weights-claim",
                ro.iter()
                    .map(|t| t.rel.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                opts.gid
            ));
            Some(c)
        }
    };
    if claim.is_some() && manifest_in_claim(policy).is_some() {
        notes.push(format!(
            "integrity.verify is on: warden checks the tiers against a manifest before each \
             start. Seal the claim's own copy (sizes, times and inodes differ from this host's) \
             and put the manifest at {MANIFEST_IN_CLAIM} in the claim, owned by uid {} and not \
             writable by others; it is mounted read-only at {}",
            opts.uid,
            crate::integrity::manifest::path(&policy.state_dir).display()
        ));
    }

    let ports = ports(policy);
    let port_name = |i: usize, p: u16| {
        if i == 0 {
            "http".to_owned()
        } else {
            format!("port-{p}")
        }
    };
    let loopback = loopback_only(&policy.service.listen);
    if loopback {
        notes.push(format!(
            "service.listen is loopback only: in a pod that is the pod's own loopback, which the \
             Service cannot reach. Put an authenticating TLS proxy in the pod that forwards to \
             {}, or listen on 0.0.0.0 and rely on the NetworkPolicy; the probes run `warden \
             status --ready` inside the container",
            policy
                .service
                .listen
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let container = container(policy, opts, &name, &image, &ports, port_name, loopback);
    let volumes = volumes(policy, opts, &config, claim.as_deref());
    let mut pod_spec = Node::map()
        .with("serviceAccountName", &name)
        .with("automountServiceAccountToken", false)
        .with("enableServiceLinks", false)
        .with(
            "securityContext",
            Node::map()
                .with("runAsNonRoot", true)
                .with("runAsUser", opts.uid)
                .with("runAsGroup", opts.gid)
                .with("fsGroup", opts.gid)
                .with("fsGroupChangePolicy", "OnRootMismatch")
                .with("seccompProfile", Node::map().with("type", "RuntimeDefault")),
        )
        .with(
            "terminationGracePeriodSeconds",
            i64::try_from(policy.service.stop_timeout.0.as_secs())
                .unwrap_or(i64::MAX / 2)
                .saturating_add(15),
        )
        .with("containers", vec![container])
        .with("volumes", volumes);
    let gpu = !policy.sandbox.devices.is_empty();
    if policy.sandbox.devices.contains(&DevicePreset::Nvidia) {
        pod_spec.set(
            "tolerations",
            vec![
                Node::map()
                    .with("key", "nvidia.com/gpu")
                    .with("operator", "Exists")
                    .with("effect", "NoSchedule"),
            ],
        );
    }
    let strategy = if gpu {
        // A second pod would wait for a GPU the first one holds.
        Node::map().with("type", "Recreate")
    } else {
        Node::map().with("type", "RollingUpdate").with(
            "rollingUpdate",
            Node::map()
                .with("maxSurge", 1u32)
                .with("maxUnavailable", 0u32),
        )
    };
    docs.push(
        Node::map()
            .with("apiVersion", "apps/v1")
            .with("kind", "Deployment")
            .with("metadata", meta(&name))
            .with(
                "spec",
                Node::map()
                    .with("replicas", opts.replicas)
                    .with("revisionHistoryLimit", 3u32)
                    .with(
                        "selector",
                        Node::map().with("matchLabels", selector.clone()),
                    )
                    .with("strategy", strategy)
                    .with(
                        "template",
                        Node::map()
                            .with("metadata", Node::map().with("labels", labels.clone()))
                            .with("spec", pod_spec),
                    ),
            ),
    );

    if !ports.is_empty() {
        let service_ports: Vec<Node> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Node::map()
                    .with("name", port_name(i, *p))
                    .with("protocol", "TCP")
                    .with("port", *p)
                    .with("targetPort", port_name(i, *p))
            })
            .collect();
        docs.push(
            Node::map()
                .with("apiVersion", "v1")
                .with("kind", "Service")
                .with("metadata", meta(&name))
                .with(
                    "spec",
                    Node::map()
                        .with("type", "ClusterIP")
                        .with("selector", selector.clone())
                        .with("ports", service_ports),
                ),
        );
    }

    let ingress: Vec<Node> = if ports.is_empty() {
        Vec::new()
    } else {
        vec![
            Node::map()
                .with(
                    "from",
                    vec![Node::map().with(
                        "podSelector",
                        Node::map().with(
                            "matchLabels",
                            Node::map().with(&client_label(&name), "true"),
                        ),
                    )],
                )
                .with(
                    "ports",
                    ports
                        .iter()
                        .map(|p| Node::map().with("protocol", "TCP").with("port", *p))
                        .collect::<Vec<_>>(),
                ),
        ]
    };
    docs.push(
        Node::map()
            .with("apiVersion", "networking.k8s.io/v1")
            .with("kind", "NetworkPolicy")
            .with("metadata", meta(&name))
            .with(
                "spec",
                Node::map()
                    .with(
                        "podSelector",
                        Node::map().with("matchLabels", selector.clone()),
                    )
                    .with(
                        "policyTypes",
                        vec![Node::from("Ingress"), Node::from("Egress")],
                    )
                    .with("ingress", ingress)
                    .with("egress", Vec::<Node>::new()),
            ),
    );
    notes.push(format!(
        "NetworkPolicy {name}: only pods labelled {}=true in namespace {ns} reach the service; \
         it makes no outbound connections (no DNS either)",
        client_label(&name)
    ));

    if opts.replicas > 1 {
        docs.push(
            Node::map()
                .with("apiVersion", "policy/v1")
                .with("kind", "PodDisruptionBudget")
                .with("metadata", meta(&name))
                .with(
                    "spec",
                    Node::map()
                        .with("maxUnavailable", 1u32)
                        .with("selector", Node::map().with("matchLabels", selector)),
                ),
        );
    }

    Ok((docs, notes))
}

fn bad(flag: &'static str, value: &str, why: impl Into<String>) -> ExportError {
    ExportError::Option {
        flag,
        value: value.to_owned(),
        why: why.into(),
    }
}

fn namespace(ns: &str) -> Node {
    let mut labels = Node::map().with("kubernetes.io/metadata.name", ns);
    for mode in ["enforce", "audit", "warn"] {
        labels.set(&format!("pod-security.kubernetes.io/{mode}"), "restricted");
        labels.set(
            &format!("pod-security.kubernetes.io/{mode}-version"),
            "latest",
        );
    }
    Node::map()
        .with("apiVersion", "v1")
        .with("kind", "Namespace")
        .with(
            "metadata",
            Node::map().with("name", ns).with("labels", labels),
        )
}

/// The image reference: given, or a placeholder; pinned by digest when one is given.
fn image_ref(opts: &Options, name: &str, notes: &mut Vec<String>) -> Result<String, ExportError> {
    let base = match &opts.image {
        Some(i) => {
            if i.is_empty() || i.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("--image", i, "expected NAME[:TAG] or NAME@sha256:HEX"));
            }
            i.clone()
        }
        None => {
            notes.push(format!(
                "no --image: the placeholder example.invalid/{name}:{} will not pull; build an \
                 image with warden and the deployment in it",
                env!("CARGO_PKG_VERSION")
            ));
            format!("example.invalid/{name}:{}", env!("CARGO_PKG_VERSION"))
        }
    };
    let pinned = match &opts.digest {
        Some(d) => {
            let hex = d.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("--digest", d, "expected sha256: and 64 hex digits"));
            }
            if base.contains('@') {
                return Err(bad("--digest", d, "the image already names a digest"));
            }
            format!("{base}@{}", d.to_ascii_lowercase())
        }
        None => {
            if !base.contains('@') {
                notes.push(
                    "the image is not pinned by a digest: pass --digest sha256:... so that every \
                     node runs the same bytes"
                        .into(),
                );
            }
            base
        }
    };
    Ok(pinned)
}

#[allow(clippy::too_many_arguments)]
fn container(
    policy: &Policy,
    opts: &Options,
    name: &str,
    image: &str,
    ports: &[u16],
    port_name: impl Fn(usize, u16) -> String,
    loopback: bool,
) -> Node {
    let mut limits = Node::map()
        .with("cpu", &opts.cpu_limit)
        .with("memory", &opts.memory);
    let mut requests = Node::map()
        .with("cpu", &opts.cpu)
        .with("memory", &opts.memory);
    if let Some(res) = gpu_resource(policy, opts) {
        limits.set(&res, opts.gpus);
        requests.set(&res, opts.gpus);
    }
    let mut c = Node::map()
        .with("name", name)
        .with("image", image)
        .with("imagePullPolicy", "Always")
        .with(
            "command",
            vec![Node::from(WARDEN_IN_IMAGE), Node::from("run")],
        )
        .with("workingDir", policy.workdir.to_string_lossy().into_owned())
        .with(
            "env",
            vec![
                Node::map()
                    .with("name", "WARDEN_POLICY")
                    .with("value", policy.file.to_string_lossy().into_owned()),
            ],
        );
    if !ports.is_empty() {
        c.set(
            "ports",
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Node::map()
                        .with("name", port_name(i, *p))
                        .with("containerPort", *p)
                        .with("protocol", "TCP")
                })
                .collect::<Vec<_>>(),
        );
    }
    c.set(
        "securityContext",
        Node::map()
            .with("runAsNonRoot", true)
            .with("runAsUser", opts.uid)
            .with("runAsGroup", opts.gid)
            .with("privileged", false)
            .with("allowPrivilegeEscalation", false)
            .with("readOnlyRootFilesystem", true)
            .with(
                "capabilities",
                Node::map().with("drop", vec![Node::from("ALL")]),
            )
            .with("seccompProfile", Node::map().with("type", "RuntimeDefault")),
    );
    c.set(
        "resources",
        Node::map()
            .with("requests", requests)
            .with("limits", limits),
    );
    let (startup, ready, live) = probes(policy, loopback);
    c.set("startupProbe", startup);
    c.set("readinessProbe", ready);
    c.set("livenessProbe", live);
    c.set("volumeMounts", mounts(policy));
    c
}

fn gpu_resource(policy: &Policy, opts: &Options) -> Option<String> {
    if opts.gpus == 0 {
        return None;
    }
    if let Some(r) = &opts.gpu_resource {
        return Some(r.clone());
    }
    policy.sandbox.devices.iter().find_map(|d| match d {
        DevicePreset::Nvidia => Some("nvidia.com/gpu".to_owned()),
        DevicePreset::Dri => None,
    })
}

/// Startup, readiness and liveness probes from `service.ready`. The kubelet reaches the pod's
/// address, never its loopback: a loopback-only service is probed from inside the container by
/// `warden status --ready`, which runs the policy's own ready check.
fn probes(policy: &Policy, loopback: bool) -> (Node, Node, Node) {
    let timeout = policy
        .service
        .ready
        .as_ref()
        .map_or(60, |r| r.timeout.0.as_secs().max(1));
    let target = ready_target(policy);
    let action: Node = match (&target, loopback) {
        (Some((_, port, Some(path))), false) => Node::map().with(
            "httpGet",
            Node::map()
                .with("path", path.as_str())
                .with("port", *port)
                .with("scheme", "HTTP"),
        ),
        (Some((_, port, None)), false) => {
            Node::map().with("tcpSocket", Node::map().with("port", *port))
        }
        (None, false) if !ports(policy).is_empty() => {
            Node::map().with("tcpSocket", Node::map().with("port", ports(policy)[0]))
        }
        _ => Node::map().with(
            "exec",
            Node::map().with(
                "command",
                vec![
                    Node::from(WARDEN_IN_IMAGE),
                    Node::from("status"),
                    Node::from("--ready"),
                ],
            ),
        ),
    };
    let with = |mut n: Node, period: u32, failures: u32| {
        let Node::Map(entries) = &action else {
            unreachable!()
        };
        for (k, v) in entries {
            n.set(k, v.clone());
        }
        n.with("periodSeconds", period)
            .with("timeoutSeconds", 5u32)
            .with("failureThreshold", failures)
    };
    let startup_failures = u32::try_from(timeout.div_ceil(5))
        .unwrap_or(u32::MAX)
        .max(1)
        + 1;
    (
        with(Node::map(), 5, startup_failures),
        with(Node::map(), 10, 3),
        with(Node::map(), 20, 3),
    )
}

/// (volume name, mount path, read-only, sub-path) for every mount.
fn mount_list(policy: &Policy) -> Vec<(String, String, bool, Option<String>)> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut m = vec![(
        "policy".to_owned(),
        s(&policy.file),
        true,
        Some(crate::policy::DEFAULT_FILE.to_owned()),
    )];
    for t in policy.read_only_tiers() {
        m.push(("weights".into(), s(&t.path), true, Some(s(&t.rel))));
    }
    let mut rw = 0;
    for t in policy
        .tiers
        .iter()
        .filter(|t| t.access == Access::ReadWrite)
    {
        rw += 1;
        m.push((format!("data-{rw}"), s(&t.path), false, None));
    }
    m.push(("logs".into(), s(&policy.logs_dir), false, None));
    m.push(("private-tmp".into(), s(&policy.tmp_dir), false, None));
    m.push(("state".into(), s(&policy.state_dir), false, None));
    if let Some(sub) = manifest_in_claim(policy) {
        // Over the emptyDir: the manifest travels with the weights, read-only.
        let at = crate::integrity::manifest::path(&policy.state_dir);
        m.push(("weights".into(), s(&at), true, Some(sub.into())));
    }
    if policy.tmp_dir != Path::new("/tmp") {
        m.push(("tmp".into(), "/tmp".into(), false, None));
    }
    m.push(("dshm".into(), "/dev/shm".into(), false, None));
    m
}

/// Where the integrity manifest is expected in the weights claim, when warden verifies the
/// tiers before each start.
pub const MANIFEST_IN_CLAIM: &str = ".warden/manifest.json";

fn manifest_in_claim(policy: &Policy) -> Option<&'static str> {
    let verifies = policy.integrity.verify != crate::policy::schema::Verify::Off;
    (verifies && policy.read_only_tiers().next().is_some()).then_some(MANIFEST_IN_CLAIM)
}

fn mounts(policy: &Policy) -> Vec<Node> {
    mount_list(policy)
        .into_iter()
        .map(|(name, path, ro, sub)| {
            let mut n = Node::map().with("name", name).with("mountPath", path);
            if let Some(s) = sub {
                n.set("subPath", s);
            }
            if ro {
                n.set("readOnly", true);
            }
            n
        })
        .collect()
}

fn volumes(policy: &Policy, opts: &Options, config: &str, claim: Option<&str>) -> Vec<Node> {
    let empty = |size: &str| Node::map().with("emptyDir", Node::map().with("sizeLimit", size));
    let mut v = vec![
        Node::map().with("name", "policy").with(
            "configMap",
            Node::map()
                .with("name", config)
                .with("defaultMode", 0o444u32),
        ),
    ];
    if let Some(c) = claim {
        v.push(Node::map().with("name", "weights").with(
            "persistentVolumeClaim",
            Node::map().with("claimName", c).with("readOnly", true),
        ));
    }
    let rw = policy
        .tiers
        .iter()
        .filter(|t| t.access == Access::ReadWrite)
        .count();
    for i in 1..=rw {
        v.push(empty("10Gi").with("name", format!("data-{i}")));
    }
    v.push(empty("2Gi").with("name", "logs"));
    v.push(empty("10Gi").with("name", "private-tmp"));
    v.push(empty("20Gi").with("name", "state"));
    if policy.tmp_dir != Path::new("/tmp") {
        v.push(empty("1Gi").with("name", "tmp"));
    }
    v.push(
        Node::map().with("name", "dshm").with(
            "emptyDir",
            Node::map()
                .with("medium", "Memory")
                .with("sizeLimit", &opts.shm_size),
        ),
    );
    // `name` first reads better.
    v.into_iter().map(name_first).collect()
}

fn name_first(n: Node) -> Node {
    match n {
        Node::Map(mut e) => {
            if let Some(i) = e.iter().position(|(k, _)| k == "name") {
                let x = e.remove(i);
                e.insert(0, x);
            }
            Node::Map(e)
        }
        other => other,
    }
}

/// A DNS-1123 label from a service name: lowercase, `[a-z0-9-]`, at most 63 characters,
/// starting and ending with a letter or digit.
pub fn dns_label(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(63);
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() { "service".into() } else { s }
}

/// Whether a string is a Kubernetes quantity (a decimal number with an optional suffix).
pub fn is_quantity(q: &str) -> bool {
    let num_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(num_end);
    let num_ok = !num.is_empty()
        && num.matches('.').count() <= 1
        && !num.starts_with('.')
        && !num.ends_with('.');
    num_ok
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "P" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi"
        )
}
