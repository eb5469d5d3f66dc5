//! Who the current process is: effective user and the groups it may give files to.

use std::io;

/// The effective user id.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The effective group id.
pub fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// The effective group id and the supplementary groups, deduplicated.
pub fn groups() -> io::Result<Vec<u32>> {
    let mut out: Vec<u32> = rustix::process::getgroups()?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    out.push(rustix::process::getegid().as_raw());
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
