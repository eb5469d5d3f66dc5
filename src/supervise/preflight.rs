//! Refusals before anything starts: public tunnels and bind addresses the policy does not allow,
//! found in the command line and the service's environment. Each refusal names the policy key
//! that would allow it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::policy::Policy;

/// Why the service may not start as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was seen.
    pub seen: String,
    /// The policy key that would allow it.
    pub key: &'static str,
    /// What to do.
    pub fix: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (policy key {}): {}", self.seen, self.key, self.fix)
    }
}

/// A bind the service was told to use: host and, when given, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: String,
    pub port: Option<u16>,
    /// Where it came from (a flag or a variable).
    pub source: String,
}

const HOST_FLAGS: &[&str] = &[
    "--server-name",
    "--server_name",
    "--host",
    "--ip",
    "--address",
];
const PORT_FLAGS: &[&str] = &["--server-port", "--server_port", "--port"];
const HOSTPORT_FLAGS: &[&str] = &["--bind", "-b"];
const HOST_VARS: &[&str] = &["GRADIO_SERVER_NAME", "HOST"];
const PORT_VARS: &[&str] = &["GRADIO_SERVER_PORT", "PORT"];
const HOSTPORT_VARS: &[&str] = &["OLLAMA_HOST"];

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Splits `--flag=value` and `--flag value` forms; returns (flag, inline value).
fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((f, v)) if f.starts_with('-') => (f, Some(v)),
        _ => (arg, None),
    }
}

/// Finds the binds in a command line and an environment.
pub fn binds(command: &[String], env: &BTreeMap<String, String>) -> Vec<Bind> {
    let mut host: Option<(String, String)> = None;
    let mut port: Option<(u16, String)> = None;
    let mut out = Vec::new();
    let mut i = 0;
    while i < command.len() {
        let (flag, inline) = split_flag(&command[i]);
        let next = command.get(i + 1).filter(|n| !n.starts_with('-'));
        let value = inline.map(str::to_owned).or_else(|| next.cloned());
        let consumed = usize::from(inline.is_none() && next.is_some());
        if flag == "--listen" {
            // Bare `--listen` (webui, ComfyUI) means every interface.
            let h = value.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
            host = Some((h, command[i].clone()));
            i += 1 + consumed;
            continue;
        }
        if HOST_FLAGS.contains(&flag) {
            if let Some(v) = value {
                host = Some((v, flag.to_owned()));
                i += 1 + consumed;
                continue;
            }
        } else if PORT_FLAGS.contains(&flag) {
            if let Some(p) = value.as_deref().and_then(|v| v.parse().ok()) {
                port = Some((p, flag.to_owned()));
                i += 1 + consumed;
                continue;
            }
        } else if HOSTPORT_FLAGS.contains(&flag)
            && let Some(v) = value
        {
            out.push(parse_hostport(&v, flag));
            i += 1 + consumed;
            continue;
        }
        i += 1;
    }
    for k in HOST_VARS {
        if host.is_none()
            && let Some(v) = env.get(*k)
        {
            host = Some((v.clone(), (*k).to_owned()));
        }
    }
    for k in PORT_VARS {
        if port.is_none()
            && let Some(p) = env.get(*k).and_then(|v| v.parse().ok())
        {
            port = Some((p, (*k).to_owned()));
        }
    }
    for k in HOSTPORT_VARS {
        if let Some(v) = env.get(*k) {
            out.push(parse_hostport(v, k));
        }
    }
    match (host, port) {
        (Some((h, hs)), Some((p, ps))) => out.push(Bind {
            host: h,
            port: Some(p),
            source: format!("{hs} and {ps}"),
        }),
        (Some((h, hs)), None) => out.push(Bind {
            host: h,
            port: None,
            source: hs,
        }),
        (None, Some((p, ps))) => out.push(Bind {
            host: String::new(),
            port: Some(p),
            source: ps,
        }),
        (None, None) => {}
    }
    out
}

fn parse_hostport(v: &str, source: &str) -> Bind {
    let v = v
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let (h, p) = match v.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (h, p.parse().ok())
        }
        _ => (v, None),
    };
    Bind {
        host: h.trim_matches(['[', ']']).to_owned(),
        port: p,
        source: source.to_owned(),
    }
}

fn resolve_host(h: &str) -> Option<IpAddr> {
    match h {
        "" => None,
        "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "*" => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        _ => h.parse().ok(),
    }
}

/// Checks the command and the service's environment against the policy.
pub fn check(policy: &Policy, env: &BTreeMap<String, String>) -> Vec<Refusal> {
    let mut out = Vec::new();
    let s = &policy.service;
    if !s.allow_share {
        for a in &s.command {
            let (flag, v) = split_flag(a);
            if flag == "--share" && v.is_none_or(truthy) {
                out.push(Refusal {
                    seen: format!(
                        "the command has {a}, which opens a public tunnel to the service"
                    ),
                    key: "service.allow-share",
                    fix: "remove it from service.command, or set service.allow-share = true".into(),
                });
            }
        }
        if let Some(v) = env.get("GRADIO_SHARE").filter(|v| truthy(v)) {
            out.push(Refusal {
                seen: format!("GRADIO_SHARE={v} opens a public tunnel to the service"),
                key: "service.allow-share",
                fix: "remove it from service.env, or set service.allow-share = true".into(),
            });
        }
    }
    for b in binds(&s.command, env) {
        let ip = resolve_host(&b.host);
        let allowed = s
            .listen
            .iter()
            .any(|l| ip.is_none_or(|ip| l.ip() == ip) && b.port.is_none_or(|p| l.port() == p));
        if !allowed {
            let shown = match (b.host.as_str(), b.port) {
                ("", Some(p)) => format!("port {p}"),
                (h, Some(p)) => format!("{h}:{p}"),
                (h, None) => h.to_owned(),
            };
            let every = ip.is_some_and(|ip| {
                ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            });
            out.push(Refusal {
                seen: format!(
                    "{} tells the service to listen on {shown}{}",
                    b.source,
                    if every { ", every network interface" } else { "" }
                ),
                key: "service.listen",
                fix: if s.listen.is_empty() {
                    "service.listen is empty: add the address the service should listen on, e.g. \"127.0.0.1:7860\"".into()
                } else {
                    format!(
                        "service.listen allows only {}; change the command or add the address to service.listen",
                        s.listen.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    )
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn policy(extra: &str) -> (tempfile::TempDir, Policy) {
        let d = tempfile::tempdir().unwrap();
        let text = format!("[service]\nname = \"s\"\ncommand = [\"x\"]\nuser = \"svc\"\n{extra}\n");
        let p = Policy::from_str(&text, &d.path().join("warden.toml")).unwrap();
        (d, p)
    }

    #[test]
    fn finds_binds_in_common_forms() {
        let none = BTreeMap::new();
        let b = binds(
            &cmd("python3 app.py --server-name 0.0.0.0 --server-port 7860"),
            &none,
        );
        assert_eq!(
            b,
            vec![Bind {
                host: "0.0.0.0".into(),
                port: Some(7860),
                source: "--server-name and --server-port".into()
            }]
        );
        let b = binds(&cmd("uvicorn app:app --host=127.0.0.1 --port=8000"), &none);
        assert_eq!((b[0].host.as_str(), b[0].port), ("127.0.0.1", Some(8000)));
        let b = binds(&cmd("python launch.py --listen --port 7860"), &none);
        assert_eq!((b[0].host.as_str(), b[0].port), ("0.0.0.0", Some(7860)));
        let b = binds(&cmd("gunicorn -b [::1]:9000 app:app"), &none);
        assert_eq!((b[0].host.as_str(), b[0].port), ("::1", Some(9000)));
        let env = BTreeMap::from([("OLLAMA_HOST".to_owned(), "0.0.0.0:11434".to_owned())]);
        let b = binds(&cmd("ollama serve"), &env);
        assert_eq!((b[0].host.as_str(), b[0].port), ("0.0.0.0", Some(11434)));
        assert!(binds(&cmd("python3 app.py"), &none).is_empty());
    }

    #[test]
    fn share_is_refused_naming_the_key() {
        let (_d, mut p) = policy("listen = [\"127.0.0.1:7860\"]");
        p.service.command = cmd("python3 app.py --share");
        let r = check(&p, &BTreeMap::new());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].key, "service.allow-share");
        let env = BTreeMap::from([("GRADIO_SHARE".to_owned(), "True".to_owned())]);
        p.service.command = cmd("python3 app.py");
        assert_eq!(check(&p, &env)[0].key, "service.allow-share");
        p.service.allow_share = true;
        assert!(check(&p, &env).is_empty());
    }

    #[test]
    fn binds_outside_listen_are_refused() {
        let (_d, mut p) = policy("listen = [\"127.0.0.1:7860\"]");
        let none = BTreeMap::new();
        p.service.command = cmd("python3 app.py --server-name 127.0.0.1 --server-port 7860");
        assert!(check(&p, &none).is_empty());
        p.service.command = cmd("python3 app.py --server-name localhost");
        assert!(check(&p, &none).is_empty());
        p.service.command = cmd("python3 app.py --server-name 0.0.0.0 --server-port 7860");
        let r = check(&p, &none);
        assert_eq!(r[0].key, "service.listen");
        assert!(r[0].seen.contains("every network interface"), "{}", r[0]);
        p.service.command = cmd("python3 app.py --listen");
        assert_eq!(check(&p, &none)[0].key, "service.listen");
        p.service.command = cmd("python3 app.py --port 9999");
        assert_eq!(check(&p, &none)[0].key, "service.listen");
    }
}
