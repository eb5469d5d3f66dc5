//! `warden status`.

use anyhow::Result;

use super::Outcome;
use crate::cli::{Format, StatusArgs};
use crate::policy::Policy;
use crate::supervise::control;

pub fn run(policy: &Policy, args: &StatusArgs) -> Result<Outcome> {
    let r = control::status(policy)?;
    if args.ready {
        return Ok(ready_now(policy, &r));
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Format::Text => {
            println!("{}: {}", r.name, r.state);
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            if let Some(pid) = r.service_pid {
                println!(
                    "  pid:       {pid} (supervisor {})",
                    opt(r.supervisor_pid.map(|p| p.to_string()))
                );
                println!(
                    "  user:      {} (uid {})",
                    opt(r.user.clone()),
                    opt(r.uid.map(|u| u.to_string()))
                );
                println!(
                    "  uptime:    {}",
                    opt(r.uptime_seconds.map(|s| humantime::format_duration(
                        std::time::Duration::from_secs(s)
                    )
                    .to_string()))
                );
                println!("  ready:     {}", if r.ready { "yes" } else { "not yet" });
                if let Some(sb) = &r.sandbox {
                    println!("  sandbox:   {sb}");
                }
                let l: Vec<String> = r.listening.iter().map(ToString::to_string).collect();
                println!(
                    "  listening: {}",
                    if l.is_empty() {
                        "-".into()
                    } else {
                        l.join(", ")
                    }
                );
            }
            println!("  restarts:  {}", r.restarts);
            if let Some(e) = &r.last_exit {
                println!("  last exit: {e}");
            }
            if r.log_dropped_bytes > 0 {
                println!(
                    "  log drops: {} bytes could not be written to the log (disk full?)",
                    r.log_dropped_bytes
                );
            }
            if let Some(m) = &r.message {
                println!("  message:   {}", crate::term::escape(m));
            }
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
        }
    }
    Ok(match r.state.as_str() {
        "failed" => Outcome::Findings,
        "stopped" => Outcome::Code(3),
        _ => Outcome::Clean,
    })
}

/// `--ready`: exit 0 when the service runs and answers the policy's ready check now (warden's
/// own verdict when the policy has no check), else 1. Container probes run it inside the pod,
/// where a service listening on loopback can be reached.
fn ready_now(policy: &Policy, r: &control::Report) -> Outcome {
    let verdict = if r.service_pid.is_none() {
        Err(format!("not running ({})", r.state))
    } else if let Some(probe) = policy
        .service
        .ready
        .as_ref()
        .and_then(crate::supervise::ready::Probe::from_policy)
    {
        probe.check(std::time::Duration::from_secs(3))
    } else if r.ready {
        Ok(())
    } else {
        Err("not ready yet".into())
    };
    match verdict {
        Ok(()) => {
            println!("{}: ready", r.name);
            Outcome::Clean
        }
        Err(e) => {
            println!("{}: not ready: {}", r.name, crate::term::escape(&e));
            Outcome::Findings
        }
    }
}
