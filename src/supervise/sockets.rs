//! Where the service listens: the `socket:[INODE]` links of its processes matched against the
//! LISTEN rows of `/proc/PID/net/tcp` and `tcp6` (its own network namespace).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Listening TCP addresses of the given processes, sorted and deduplicated.
pub fn listening(pids: &[i32]) -> Vec<SocketAddr> {
    let mut inodes = BTreeSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
                    && let Ok(n) = n.parse::<u64>()
                {
                    inodes.insert(n);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    if let Some(pid) = pids.first() {
        for table in ["tcp", "tcp6"] {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
                out.extend(
                    parse_listeners(&text)
                        .into_iter()
                        .filter(|(_, ino)| inodes.contains(ino))
                        .map(|(a, _)| a),
                );
            }
        }
    }
    out.into_iter().collect()
}

/// Parses a `/proc/net/tcp{,6}` table: (local address, inode) of rows in state LISTEN (0A).
pub fn parse_listeners(text: &str) -> Vec<(SocketAddr, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let addr = parse_addr(f[1])?;
            Some((addr, f[9].parse().ok()?))
        })
        .collect()
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1EB4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1EB4 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 999 1\n";
        assert_eq!(
            parse_listeners(v4),
            vec![("127.0.0.1:7860".parse().unwrap(), 12345)]
        );
        let v6 = "header\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 777 1\n";
        assert_eq!(
            parse_listeners(v6),
            vec![("[::1]:8080".parse().unwrap(), 777)]
        );
    }

    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id() as i32;
        assert!(listening(&[me]).contains(&l.local_addr().unwrap()));
    }
}
