//! The manifest: every sealed file's relative path, size, digest and the metadata a quick
//! verify compares. Written atomically; read back only when its owner is the reader.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;
use super::hash::Algo;

/// The manifest format written by this version.
pub const FORMAT: u32 = 1;
/// The directory (inside the state dir) holding the manifest and the scan cache.
pub const DIR: &str = "integrity";
pub const FILE: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    pub format: u32,
    pub digest: Algo,
    /// Size of the chunks large files are also hashed in (verified in parallel).
    pub chunk_size: u64,
    /// When it was sealed (seconds since the epoch).
    pub sealed_at: u64,
    /// The deployment root the paths are relative to, when sealed.
    pub root: PathBuf,
    /// The sealed tiers, relative to the root.
    pub tiers: Vec<String>,
    pub files: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Entry {
    /// Relative to the deployment root, `/`-separated, no `..`.
    pub path: String,
    pub size: u64,
    /// The whole file's digest, lowercase hex.
    pub digest: String,
    /// Digests of `chunk-size` pieces, for large files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
    /// Modification and status-change times (nanoseconds) and inode, for `--quick`.
    pub mtime: i64,
    pub ctime: i64,
    pub ino: u64,
}

/// Whether a relative path from a manifest is safe to join onto the root.
pub fn safe_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Where the manifest of a policy lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR).join(FILE)
}

/// Creates `state/integrity` (0755, so nothing but its owner writes in it).
pub fn ensure_dir(state_dir: &Path) -> io::Result<PathBuf> {
    let d = state_dir.join(DIR);
    fs::create_dir_all(&d)?;
    let meta = fs::symlink_metadata(&d)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            d.display()
        )));
    }
    if meta.uid() == rustix::process::geteuid().as_raw() {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
    }
    Ok(d)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl Manifest {
    pub fn save(&self, state_dir: &Path) -> Result<PathBuf, Error> {
        let dir = ensure_dir(state_dir).map_err(|source| Error::Io {
            what: "cannot create",
            path: state_dir.join(DIR),
            source,
        })?;
        let p = dir.join(FILE);
        let mut text = serde_json::to_vec_pretty(self).expect("serializable");
        text.push(b'\n');
        write_atomic(&p, &text).map_err(|source| Error::Io {
            what: "cannot write",
            path: p.clone(),
            source,
        })?;
        Ok(p)
    }

    /// Reads the manifest, refusing one that someone else could have written.
    pub fn load(state_dir: &Path) -> Result<Self, Error> {
        let p = path(state_dir);
        let mut f = match File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoManifest(p));
            }
            Err(source) => {
                return Err(Error::Io {
                    what: "cannot open",
                    path: p,
                    source,
                });
            }
        };
        let meta = f.metadata().map_err(|source| Error::Io {
            what: "cannot stat",
            path: p.clone(),
            source,
        })?;
        trusted(&p, &meta)?;
        let mut text = Vec::with_capacity(meta.len() as usize);
        io::Read::read_to_end(&mut f, &mut text).map_err(|source| Error::Io {
            what: "cannot read",
            path: p.clone(),
            source,
        })?;
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| Error::BadManifest {
            path: p.clone(),
            why: e.to_string(),
        })?;
        if m.format != FORMAT {
            return Err(Error::BadManifest {
                path: p,
                why: format!("format {} (this warden reads {FORMAT})", m.format),
            });
        }
        if let Some(e) = m.files.iter().find(|e| !safe_rel(&e.path)) {
            return Err(Error::BadManifest {
                path: p,
                why: format!("unsafe path {:?}", crate::term::escape(&e.path)),
            });
        }
        Ok(m)
    }
}

/// A file warden trusts: owned by the user reading it and writable by nobody else.
pub fn trusted(p: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::Untrusted {
            path: p.to_owned(),
            why: format!(
                "it is owned by uid {} with mode {:04o}; it must belong to uid {me} and be writable by it alone (seal again)",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(())
}
