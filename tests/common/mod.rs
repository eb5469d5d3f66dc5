//! Shared test builder: a temporary deployment tree and a `warden` command bound to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A deployment directory in a temp dir, removed when dropped.
pub struct Deployment {
    pub dir: tempfile::TempDir,
}

impl Deployment {
    /// An empty deployment directory.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("warden-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// A copy of `examples/NAME` from the repository.
    pub fn example(name: &str) -> Self {
        let d = Self::empty();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        copy_tree(&src, d.path());
        d
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn policy(&self) -> PathBuf {
        self.path().join("warden.toml")
    }

    /// Writes a file (creating parents) relative to the deployment.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    /// `warden -c DEPLOYMENT/warden.toml ARGS...`, with a clean environment.
    pub fn warden(&self, args: &[&str]) -> Command {
        let mut c = warden();
        c.arg("-c").arg(self.policy()).args(args);
        c
    }
}

/// The `warden` binary with no inherited policy variable.
pub fn warden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
    c.env_remove("WARDEN_POLICY").env("NO_COLOR", "1");
    c
}

/// Recursively copies a tree (files, dirs and symlinks as links).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Replaces the temp path in output so snapshots are stable.
pub fn redact_paths(out: &str, d: &Deployment) -> String {
    let real = d.path().canonicalize().unwrap();
    out.replace(&*real.to_string_lossy(), "[DEPLOY]")
        .replace(&*d.path().to_string_lossy(), "[DEPLOY]")
}
