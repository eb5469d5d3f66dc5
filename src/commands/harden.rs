//! `warden harden`: create the account and apply the policy's ownership and modes.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use super::Outcome;
use crate::account::{self, Accounts};
use crate::cli::{Format, HardenArgs};
use crate::perms::{self, Account, Names, Principal, Privilege};
use crate::policy::Policy;

/// Changes shown per zone without `--verbose`.
const SUMMARY_LINES: usize = 20;

pub fn run(policy: &Policy, args: &HardenArgs) -> Result<Outcome> {
    let who = Privilege::current().context("cannot read the current process's groups")?;
    let db = account::System;
    let spec = account::Spec::from_policy(policy, &account::nologin_shell());
    let mut acct = account::plan(&spec, &db)
        .with_context(|| format!("cannot plan the service account {}", spec.user))?;
    let actions = acct.actions.clone();
    let account_applied = !args.dry_run && who.root;
    let lookup = |is_group: bool, name: &str| {
        if is_group {
            db.group(name).ok().flatten()
        } else {
            db.user(name).ok().flatten().map(|u| u.uid)
        }
    };
    perms::preflight(policy, &lookup).context("cannot harden the deployment")?;
    if account_applied && !actions.is_empty() {
        account::apply(&acct, &db)
            .with_context(|| format!("cannot set up the service account {}", spec.user))?;
        acct = account::plan(&spec, &db)
            .with_context(|| format!("cannot look up the service account {}", spec.user))?;
    }
    let settings_account = Account {
        user: Principal::new(&spec.user, acct.uid),
        group: Principal::new(&spec.group, acct.gid),
        gids: acct.gids.clone(),
    };

    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let show_progress = args.format == Format::Text && std::io::stderr().is_terminal();
    let settings = perms::Settings {
        dry_run: args.dry_run,
        who,
        account: settings_account,
        progress: Some(&progress),
    };
    let report = std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| progress_display(&progress, &done));
        }
        let r = perms::harden(policy, &settings, &lookup);
        done.store(true, Ordering::Relaxed);
        r
    })
    .context("cannot harden the deployment")?;

    let names = Names::default();
    let counts = report.counts();
    let account_status = if args.dry_run {
        "planned"
    } else if account_applied {
        "applied"
    } else {
        "needs-root"
    };
    let account_pending = if account_applied { 0 } else { actions.len() };
    match args.format {
        Format::Json => {
            let mut doc = report.to_json(&names);
            doc["account"] = json!({
                "user": spec.user, "uid": acct.uid,
                "group": spec.group, "gid": acct.gid,
                "actions": actions.iter().map(|a| json!({
                    "action": a.kind(), "command": a.argv(), "status": account_status,
                })).collect::<Vec<_>>(),
                "warnings": acct.warnings,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => {
            for a in &actions {
                let note = match account_status {
                    "needs-root" => "  (needs root)",
                    _ => "",
                };
                println!("account: {a}{note}");
            }
            for w in &acct.warnings {
                println!("warning: account: {}", crate::term::escape(w));
            }
            for line in report.text_lines(args.verbose, SUMMARY_LINES, &names) {
                println!("{line}");
            }
            let entries = format!("{} entries checked", report.checked);
            let nothing = counts.changes == 0 && actions.is_empty();
            if nothing && report.failures.is_empty() {
                println!("already hardened: 0 changes ({entries})");
            } else if args.dry_run {
                println!(
                    "dry run: {} changes planned{} ({entries}); nothing was changed",
                    counts.changes,
                    plural_actions(actions.len())
                );
            } else {
                let partly = match counts.partial {
                    0 => String::new(),
                    n => format!(", {n} partly"),
                };
                println!(
                    "hardened: {} of {} changes applied{partly}{} ({entries})",
                    counts.applied,
                    counts.changes,
                    if account_applied {
                        plural_actions(actions.len())
                    } else {
                        String::new()
                    }
                );
            }
            let need_root = counts.needs_root + account_pending;
            if need_root > 0 && !report.privileged {
                println!("{need_root} changes need root: run `sudo warden harden`");
            }
            if !report.failures.is_empty() {
                println!(
                    "{} operations failed: nothing else was affected; see the errors above",
                    report.failures.len()
                );
            }
        }
    }
    let pending_root = if args.dry_run { 0 } else { account_pending };
    Ok(if counts.not_applied + pending_root > 0 {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

fn plural_actions(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => ", 1 account action".to_owned(),
        n => format!(", {n} account actions"),
    }
}

/// Prints a running count of checked entries on stderr until `done`.
fn progress_display(count: &AtomicU64, done: &AtomicBool) {
    let mut shown = false;
    let mut ticks = 0u32;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        ticks += 1;
        // Quiet for the first half second, then every 200 ms.
        if ticks >= 25 && ticks.is_multiple_of(10) {
            eprint!(
                "\rwarden: {} entries checked",
                count.load(Ordering::Relaxed)
            );
            shown = true;
        }
    }
    if shown {
        eprint!("\r\x1b[K");
    }
}
