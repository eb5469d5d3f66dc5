//! System calls for the sandbox and for the attacks `probe` runs inside it: the Landlock ABI
//! query, the dumpable flag, ptrace, and forks whose child does one thing and never returns.

use std::io;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `LANDLOCK_CREATE_RULESET_VERSION`: ask for the ABI version instead of creating a ruleset.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The Landlock ABI version the running kernel offers. `ENOSYS`: not built in; `EOPNOTSUPP`:
/// built in but not enabled at boot.
pub fn landlock_abi() -> io::Result<u32> {
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the kernel only
    // returns the ABI version; no memory is read or written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    check(r).map(|v| u32::try_from(v).unwrap_or(0))
}

/// `prctl(PR_SET_DUMPABLE)`. A credential change clears the flag and `execve` sets it again;
/// code that runs after the drop without an `execve` sets it to match what the service has.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            libc::c_ulong::from(on),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    check(libc::c_long::from(r)).map(drop)
}

/// `ptrace(PTRACE_ATTACH, pid)`.
pub fn ptrace_attach(pid: i32) -> io::Result<()> {
    // SAFETY: PTRACE_ATTACH takes no pointers (addr and data are ignored).
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(r).map(drop)
}

/// `ptrace(PTRACE_DETACH, pid)`.
pub fn ptrace_detach(pid: i32) -> io::Result<()> {
    // SAFETY: PTRACE_DETACH with a null data pointer (no signal delivered).
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(r).map(drop)
}

/// What the child of [`fork_child`] does; it never returns to the caller's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildAction {
    /// Waits until killed.
    Pause,
    /// Raises `SIGABRT` with its default action (a core dump, if limits allow one).
    Abort,
}

/// Forks a child that only does `action`. Only for single-threaded callers (the probe helper):
/// the child runs no allocator and no locks, only async-signal-safe calls.
pub fn fork_child(action: ChildAction) -> io::Result<i32> {
    // SAFETY: the caller is single-threaded; the child only calls async-signal-safe functions
    // (signal, pause, raise, _exit) and never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above; the child ends in _exit whatever happens.
        unsafe {
            match action {
                ChildAction::Pause => loop {
                    libc::pause();
                },
                ChildAction::Abort => {
                    libc::signal(libc::SIGABRT, libc::SIG_DFL);
                    libc::raise(libc::SIGABRT);
                    libc::_exit(0);
                }
            }
        }
    }
    Ok(pid)
}

/// Closes a raw descriptor this process was handed (the report pipe, once its last message is
/// written).
pub fn close_fd(fd: i32) {
    // SAFETY: closing a descriptor number; an invalid one gives EBADF, ignored.
    unsafe { libc::close(fd) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn landlock_abi_is_a_number_or_an_error() {
        match super::landlock_abi() {
            Ok(v) => assert!(v >= 1),
            Err(e) => assert!(matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EOPNOTSUPP)
            )),
        }
    }
}
