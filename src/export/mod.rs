//! Export: the policy as the engines that run services at scale enforce it. `systemd` writes a
//! hardened unit, `k8s` the manifests of a Deployment that meets the Pod Security Standards
//! "restricted" profile. Both are pure: they read the [`Policy`] (and options) and return text
//! plus the remarks an operator should read; nothing touches the system.

pub mod check;
pub mod k8s;
pub mod systemd;
pub mod yaml;

use std::net::SocketAddr;

use crate::policy::Policy;

/// What an export produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The unit or the manifests.
    pub text: String,
    /// Remarks for the operator (printed on stderr): what could not be mapped, what to do first.
    pub notes: Vec<String>,
}

/// Why an export could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{what} {value:?} cannot be written into a systemd unit: {why}")]
    Unit {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("invalid {flag} {value:?}: {why}")]
    Option {
        flag: &'static str,
        value: String,
        why: String,
    },
}

/// Whether every listen address is a loopback address (and there is at least one).
pub fn loopback_only(listen: &[SocketAddr]) -> bool {
    !listen.is_empty() && listen.iter().all(|a| a.ip().is_loopback())
}

/// The distinct TCP ports of `service.listen`, in order (port 0 is skipped).
pub fn ports(policy: &Policy) -> Vec<u16> {
    let mut out = Vec::new();
    for a in &policy.service.listen {
        if a.port() != 0 && !out.contains(&a.port()) {
            out.push(a.port());
        }
    }
    out
}

/// The ready check as (host, port, path) for `http`, or (host, port, None) for `tcp`.
pub(crate) fn ready_target(policy: &Policy) -> Option<(String, u16, Option<String>)> {
    let r = policy.service.ready.as_ref()?;
    if let Some(url) = &r.http {
        let rest = url.strip_prefix("http://")?;
        let (hostport, path) = rest
            .find('/')
            .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) => (h.to_owned(), p),
                Err(_) => (hostport.to_owned(), 80),
            },
            _ => (hostport.to_owned(), 80),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        return Some((host, port, Some(path.to_owned())));
    }
    r.tcp.map(|a| (a.ip().to_string(), a.port(), None))
}

#[cfg(test)]
mod tests;
