//! `warden logs`.

use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use super::Outcome;
use crate::cli::LogsArgs;
use crate::logs::read::{self, Query};
use crate::policy::Policy;

pub fn run(policy: &Policy, args: &LogsArgs) -> Result<Outcome> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let lines = args.lines.or(if args.follow { Some(10) } else { None });
    let dir = &policy.logs_dir;
    let name = &policy.service.name;
    let stdout = std::io::stdout();
    let escape = stdout.is_terminal();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = None;
    let follow = args.follow;
    let mut print = |line: &[u8]| {
        if failed.is_some() {
            return;
        }
        let r = if escape {
            writeln!(
                out,
                "{}",
                crate::term::escape(&String::from_utf8_lossy(line))
            )
        } else {
            out.write_all(line).and_then(|()| out.write_all(b"\n"))
        };
        // Followed lines go out as they come.
        let r = r.and_then(|()| if follow { out.flush() } else { Ok(()) });
        if let Err(e) = r {
            failed = Some(e);
        }
    };
    let pos = read::read(dir, name, &Query { lines, since }, &mut print)
        .with_context(|| format!("reading the log of {name}"))?;
    if args.follow {
        read::follow(dir, name, pos, &mut print, || true)?;
    }
    match failed {
        // A closed pipe (`warden logs | head`) is not an error.
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing to stdout");
        }
        _ => {}
    }
    let _ = out.flush();
    Ok(Outcome::Clean)
}

/// `10m`, `2h 30m` (that long ago), or a UTC time `2025-05-12 11:43:00` / RFC 3339.
fn parse_since(s: &str) -> Result<SystemTime> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(SystemTime::now()
            .checked_sub(d)
            .unwrap_or(SystemTime::UNIX_EPOCH));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{s} 00:00:00")) {
        return Ok(t);
    }
    bail!(
        "invalid --since {}: expected a duration (\"10m\", \"2h\") or a UTC time (\"2025-05-12 11:43:00\")",
        crate::term::escape(s)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn since_values() {
        let ago = parse_since("10m").unwrap();
        let d = SystemTime::now().duration_since(ago).unwrap();
        assert!(d >= Duration::from_secs(599) && d < Duration::from_secs(700));
        assert_eq!(
            parse_since("2025-05-12 11:43:00").unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_747_050_180)
        );
        assert!(parse_since("2025-05-12").is_ok());
        assert!(parse_since("yesterday-ish").is_err());
    }
}
