//! Directory-relative file system calls that never follow a symlink.
//!
//! Every function takes a directory file descriptor and one name inside it, so a path is never
//! resolved twice and a symlink swapped in after a check is never followed: directories are
//! opened with `O_DIRECTORY | O_NOFOLLOW`, entries are examined with `fstatat(AT_SYMLINK_NOFOLLOW)`,
//! owners change with `fchownat(AT_SYMLINK_NOFOLLOW)` and modes with `fchmodat2` (falling back
//! to an `O_PATH` descriptor and `/proc/self/fd` on kernels older than 6.6).

use std::ffi::{CStr, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A device, fifo or socket.
    Special,
}

impl Kind {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Special => "special",
        }
    }
}

/// The metadata warden looks at, from one `fstatat` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub nlink: u64,
}

impl Meta {
    fn from_stat(st: &rustix::fs::Stat) -> Self {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Special,
        };
        Self {
            kind,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            nlink: st.st_nlink,
        }
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens `/`.
pub fn open_root() -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `name` inside `dir`; fails with `ELOOP` or `ENOTDIR` if it is a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, dir_flags(), Mode::empty())?)
}

/// Opens the directory `name` inside `dir` with `O_PATH`: usable as the base of the other
/// calls here, needs only search permission, never follows a symlink.
pub fn open_path_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Meta> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(Meta::from_stat(&st))
}

/// `lstat(path)`: for reports only, never before a change.
pub fn lstat(path: &Path) -> io::Result<Meta> {
    Ok(Meta::from_stat(&rustix::fs::lstat(path)?))
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`; `None` leaves that id unchanged.
pub fn chown_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    uid: Option<u32>,
    gid: Option<u32>,
) -> io::Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        uid.map(rustix::fs::Uid::from_raw),
        gid.map(rustix::fs::Gid::from_raw),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// Set once `fchmodat2` turned out to be missing (kernel older than 6.6).
static NO_FCHMODAT2: AtomicBool = AtomicBool::new(false);

/// Changes the mode of `name` inside `dir` without following a symlink.
///
/// Uses `fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW)`; on kernels without it, opens the
/// entry with `O_PATH | O_NOFOLLOW`, confirms with `fstat` that it is not a symlink, and changes
/// the mode through `/proc/self/fd/N`. A symlink gives `ELOOP` (or `EOPNOTSUPP`).
pub fn chmod_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    if !NO_FCHMODAT2.load(Ordering::Relaxed) {
        match fchmodat2(dir, name, mode) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                NO_FCHMODAT2.store(true, Ordering::Relaxed);
            }
            other => return other,
        }
    }
    chmod_via_proc(dir, name, mode)
}

fn fchmodat2(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string and `dir` a live descriptor for the
    // duration of the call; the syscall reads nothing else and writes no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::c_uint,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The fallback of [`chmod_at`], public so it can be tested on any kernel.
pub fn chmod_via_proc(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(proc.as_str(), Mode::from_raw_mode(mode))?;
    Ok(())
}

/// `mkdirat(dir, name, mode)` (the umask applies; set the exact mode afterwards).
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// `readlinkat(dir, name)`.
pub fn read_link_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

/// The names in one directory, packed in a single buffer (one allocation per directory, not
/// per entry). `.` and `..` are left out.
#[derive(Debug, Default)]
pub struct Names {
    buf: Vec<u8>,
    ends: Vec<u32>,
}

impl Names {
    /// Number of names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the directory had no entries besides `.` and `..`.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th name, NUL-terminated.
    pub fn get(&self, i: usize) -> &CStr {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        CStr::from_bytes_with_nul(&self.buf[start..end]).expect("names are NUL-terminated")
    }

    fn push(&mut self, name: &CStr) {
        self.buf.extend_from_slice(name.to_bytes_with_nul());
        self.ends.push(self.buf.len() as u32);
    }
}

/// Reads every name of the directory open at `dir` with `getdents64`.
pub fn read_names(dir: BorrowedFd<'_>) -> io::Result<Names> {
    let mut space = [MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut raw = RawDir::new(dir, &mut space);
    let mut names = Names::default();
    while let Some(entry) = raw.next() {
        let entry = entry?;
        let name = entry.file_name();
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn c(s: &str) -> std::ffi::CString {
        std::ffi::CString::new(s).unwrap()
    }

    #[test]
    fn chmod_does_not_follow_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, d.path().join("link")).unwrap();
        std::fs::write(d.path().join("plain"), b"x").unwrap();
        let dir =
            rustix::fs::open(d.path(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();

        assert!(chmod_at(dir.as_fd(), &c("link"), 0o400).is_err());
        assert!(chmod_via_proc(dir.as_fd(), &c("link"), 0o400).is_err());
        let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);

        chmod_at(dir.as_fd(), &c("plain"), 0o440).unwrap();
        assert_eq!(stat_at(dir.as_fd(), &c("plain")).unwrap().mode, 0o440);
        chmod_via_proc(dir.as_fd(), &c("plain"), 0o400).unwrap();
        assert_eq!(stat_at(dir.as_fd(), &c("plain")).unwrap().mode, 0o400);
        assert_eq!(
            stat_at(dir.as_fd(), &c("link")).unwrap().kind,
            Kind::Symlink
        );
    }

    #[test]
    fn open_dir_refuses_symlinks_and_reads_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), b"").unwrap();
        std::fs::write(d.path().join("sub/bb"), b"").unwrap();
        std::os::unix::fs::symlink("sub", d.path().join("link")).unwrap();
        let dir =
            rustix::fs::open(d.path(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        assert!(open_dir_at(dir.as_fd(), &c("link")).is_err());
        let sub = open_dir_at(dir.as_fd(), &c("sub")).unwrap();
        let names = read_names(sub.as_fd()).unwrap();
        let mut got: Vec<_> = (0..names.len())
            .map(|i| names.get(i).to_str().unwrap().to_owned())
            .collect();
        got.sort();
        assert_eq!(got, ["a", "bb"]);
        assert_eq!(
            read_link_at(dir.as_fd(), &c("link")).unwrap(),
            PathBuf::from("sub")
        );
    }
}
