//! Read-only file mappings and their resident pages.

use std::fs::File;
use std::io;

/// Maps a whole file read-only.
///
/// A file truncated underneath the mapping raises SIGBUS on access, which ends the process:
/// callers treat a mapping as a way to read, never as a result.
pub fn map_readonly(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and private to this process; its contents are only read.
    unsafe { memmap2::Mmap::map(file) }
}

/// Drops the whole pages inside `piece`, a part of a read-only file mapping, from the
/// resident set; a later access reads the same file pages again.
pub fn drop_resident(piece: &[u8]) {
    let page = 4096usize;
    let start = (piece.as_ptr() as usize).div_ceil(page) * page;
    let end = (piece.as_ptr() as usize + piece.len()) / page * page;
    if end > start {
        // SAFETY: callers pass only ranges of read-only file mappings; MADV_DONTNEED on them
        // only drops page table entries.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}
