//! Readiness: an HTTP GET that answers 2xx/3xx, or a TCP connect, polled until a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::policy::schema::Ready;

/// One readiness probe.
#[derive(Debug, Clone)]
pub enum Probe {
    Http {
        addr: String,
        host: String,
        path: String,
    },
    Tcp(SocketAddr),
}

impl Probe {
    /// Builds the probe from the policy's `ready` table.
    pub fn from_policy(r: &Ready) -> Option<Self> {
        if let Some(url) = &r.http {
            let rest = url.strip_prefix("http://")?;
            let (hostport, path) = rest
                .find('/')
                .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
            let addr = if hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                hostport.to_owned()
            } else {
                format!("{hostport}:80")
            };
            return Some(Self::Http {
                addr,
                host: hostport.to_owned(),
                path: path.to_owned(),
            });
        }
        r.tcp.map(Self::Tcp)
    }

    /// Tries once. `Ok(())` means ready.
    pub fn check(&self, timeout: Duration) -> Result<(), String> {
        match self {
            Self::Tcp(a) => TcpStream::connect_timeout(a, timeout)
                .map(drop)
                .map_err(|e| e.to_string()),
            Self::Http { addr, host, path } => {
                let a = addr
                    .to_socket_addrs()
                    .map_err(|e| format!("{addr}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{addr}: no address"))?;
                let mut s = TcpStream::connect_timeout(&a, timeout).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                // One write: a server that answers after the first segment must not see a torn request.
                let request = format!(
                    "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: warden\r\nConnection: close\r\n\r\n"
                );
                s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
                let mut head = [0u8; 64];
                let n = s.read(&mut head).map_err(|e| e.to_string())?;
                let line = String::from_utf8_lossy(&head[..n]);
                let code: u16 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP status {code}"))
                }
            }
        }
    }

    /// Polls until ready, `deadline`, or `give_up()` returns true.
    pub fn wait(&self, deadline: Instant, give_up: impl Fn() -> bool) -> Result<(), String> {
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if give_up() {
                return Err("the service exited".into());
            }
            match self.check(Duration::from_secs(2)) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("not ready in time (last attempt: {last})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_probe_accepts_2xx_and_rejects_5xx() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            for reply in ["HTTP/1.1 200 OK\r\n\r\nok", "HTTP/1.1 503 Busy\r\n\r\n"] {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 256];
                let _ = c.read(&mut buf).unwrap();
                c.write_all(reply.as_bytes()).unwrap();
            }
        });
        let r = Ready {
            http: Some(format!("http://127.0.0.1:{port}/healthz")),
            tcp: None,
            timeout: crate::policy::HumanDuration(Duration::from_secs(1)),
        };
        let p = Probe::from_policy(&r).unwrap();
        assert!(p.check(Duration::from_secs(10)).is_ok());
        assert_eq!(
            p.check(Duration::from_secs(1)).unwrap_err(),
            "HTTP status 503"
        );
        t.join().unwrap();
    }
}
