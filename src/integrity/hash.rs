//! Hashing mapped files: SHA-256 (what Hugging Face lists for LFS files) or BLAKE3, whole files
//! and fixed-size chunks of large ones, feeding an optional progress counter.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The digest of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Sha256,
    Blake3,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Blake3 => "blake3",
        }
    }
}

impl From<crate::policy::schema::Digest> for Algo {
    fn from(d: crate::policy::schema::Digest) -> Self {
        match d {
            crate::policy::schema::Digest::Sha256 => Self::Sha256,
            crate::policy::schema::Digest::Blake3 => Self::Blake3,
        }
    }
}

/// Bytes hashed between two progress updates.
const STEP: usize = 8 << 20;
/// Above this, BLAKE3 hashes one file on every core.
const BLAKE3_PARALLEL: usize = 1 << 20;

pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[usize::from(x >> 4)] as char);
        s.push(H[usize::from(x & 15)] as char);
    }
    s
}

/// Hashes `data`, adding to `progress` as it goes.
pub fn digest(algo: Algo, data: &[u8], progress: Option<&AtomicU64>) -> String {
    digest_with(algo, data, progress, |_| {})
}

/// Hashes a slice of a read-only file mapping, dropping each piece from the process's resident
/// set once hashed (the pages stay in the page cache), so memory stays flat on large models.
pub fn digest_mapped(algo: Algo, data: &[u8], progress: Option<&AtomicU64>) -> String {
    digest_with(algo, data, progress, release)
}

/// Drops a piece of a read-only file mapping from the resident set.
pub(crate) fn release(piece: &[u8]) {
    crate::sys::mem::drop_resident(piece);
}

fn digest_with(algo: Algo, data: &[u8], progress: Option<&AtomicU64>, after: fn(&[u8])) -> String {
    match algo {
        Algo::Sha256 => {
            let mut h = sha2::Sha256::new();
            for piece in data.chunks(STEP) {
                h.update(piece);
                after(piece);
                if let Some(p) = progress {
                    p.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
            }
            hex(&h.finalize())
        }
        Algo::Blake3 => {
            let mut h = blake3::Hasher::new();
            for piece in data.chunks(STEP * 8) {
                if piece.len() >= BLAKE3_PARALLEL {
                    h.update_rayon(piece);
                } else {
                    h.update(piece);
                }
                after(piece);
                if let Some(p) = progress {
                    p.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
            }
            hex(h.finalize().as_bytes())
        }
    }
}

/// The git blob id (SHA-1 of `blob <len>\0` + content): how Hugging Face names non-LFS blobs.
pub fn git_blob_sha1(data: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex(&h.finalize())
}

/// A file opened without following a final symlink, mapped read-only.
pub fn open_map(path: &Path) -> io::Result<(File, crate::scan::Mapped)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let m = crate::scan::map_open(&f)?;
    if let crate::scan::Mapped::Map(map) = &m {
        let _ = map.advise(memmap2::Advice::WillNeed);
    }
    Ok((f, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            digest(Algo::Sha256, b"abc", None),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest(Algo::Blake3, b"", None),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        // `git hash-object` of "hello\n".
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let big = vec![7u8; 3 * STEP + 5];
        let p = AtomicU64::new(0);
        let _ = digest(Algo::Sha256, &big, Some(&p));
        assert_eq!(p.load(Ordering::Relaxed), big.len() as u64);
    }
}
