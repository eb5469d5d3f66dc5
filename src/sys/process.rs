//! Process-level system calls: capabilities, the bounding set, signal masks, close-on-exec
//! sweeps, and `/proc` reads used to tell one process from another.

use std::io;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The highest capability number the kernel knows.
pub fn cap_last_cap() -> io::Result<u32> {
    let s = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?;
    s.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("cap_last_cap: {e}")))
}

/// Empties the capability bounding set (needs CAP_SETPCAP effective, so before setuid).
pub fn drop_bounding_set() -> io::Result<()> {
    for cap in 0..=cap_last_cap()? {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        match check(r) {
            Ok(()) => {}
            // A capability the kernel does not know: nothing to drop.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Clears the ambient capability set.
pub fn clear_ambient() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// Sets the effective, permitted and inheritable sets of the calling thread to empty.
pub fn clear_capabilities() -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: header and data are valid for the v3 layout (two data structs).
    check(unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) as libc::c_int })
}

/// Sets `FD_CLOEXEC` on every descriptor from `first` up, so nothing leaks into an exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with the CLOEXEC flag closes nothing; it only marks descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd.
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(fd) = entry?.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if fd >= i32::try_from(first).unwrap_or(i32::MAX) {
            // SAFETY: setting a flag on a descriptor number; a closed one gives EBADF, ignored.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Restores every catchable signal to its default action and unblocks all signals.
pub fn reset_signals() -> io::Result<()> {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound.
        unsafe { libc::signal(sig as libc::c_int, libc::SIG_DFL) };
    }
    SigSet::empty().thread_set_mask().map_err(io::Error::from)
}

/// Waits up to `timeout` for one of the (blocked) signals in `set`.
pub fn wait_signal(set: &SigSet, timeout: Duration) -> io::Result<Option<Signal>> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: the set and timespec are valid for the call; siginfo may be null.
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &raw const ts) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    Signal::try_from(r).map(Some).map_err(io::Error::from)
}

/// Makes the child of `cmd` start with an empty signal mask and with `fd` duplicated onto
/// `target` (without close-on-exec), between fork and exec.
pub fn on_spawn_unblock_and_dup(cmd: &mut std::process::Command, fd: i32, target: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (sigprocmask, dup2) run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let empty: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
            if libc::dup2(fd, target) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the child of `cmd` start a new session (detached from the caller's terminal).
pub fn on_spawn_setsid(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
}

/// Writes `bytes` to a raw descriptor this process was handed (best effort, for a last report
/// before exiting).
pub fn write_fd(fd: i32, bytes: &[u8]) {
    // SAFETY: writing a valid buffer to a descriptor number; an invalid one gives EBADF.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// `umask(mask)`, returning the previous mask.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`), the part of
/// its identity that a reused PID does not share.
pub fn start_ticks(pid: i32) -> io::Result<u64> {
    parse_start_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

/// Parses field 22 of a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after the last `)`.
pub fn parse_start_ticks(stat: &str) -> io::Result<u64> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected /proc/PID/stat format",
        )
    };
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    // After ")" come field 3 (state) onwards; start time is field 22.
    rest.split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(bad)
}

/// The boot time in seconds since the epoch (`btime` of `/proc/stat`).
pub fn boot_time() -> io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no btime in /proc/stat"))
}

/// Clock ticks per second.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Whether `pid` is alive and is the very process that started at `ticks`.
pub fn is_same_process(pid: i32, ticks: u64) -> bool {
    pid > 0 && start_ticks(pid).is_ok_and(|t| t == ticks)
}

/// The process state letter (`R`, `S`, `Z`...) of `pid`.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Children of `pid` (all threads), from `/proc/PID/task/*/children`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

/// `pid` and all its descendants.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let kids = children(all[i]);
        all.extend(
            kids.into_iter()
                .filter(|k| !all.contains(k))
                .collect::<Vec<_>>(),
        );
        i += 1;
        if all.len() > 100_000 {
            break;
        }
    }
    all
}

/// Whether a path names an executable regular file.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated string.
    p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_survives_hostile_comm() {
        let line = "1234 (evil) (x) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 19 20";
        assert_eq!(parse_start_ticks(line).unwrap(), 424_242);
        assert!(parse_start_ticks("garbage").is_err());
    }

    #[test]
    fn own_process_is_identified() {
        let me = std::process::id() as i32;
        let t = start_ticks(me).unwrap();
        assert!(is_same_process(me, t));
        assert!(!is_same_process(me, t + 1));
        // The main thread may be running or sleeping; it is certainly not a zombie.
        assert!(matches!(state(me), Some('R' | 'S')));
    }
}
