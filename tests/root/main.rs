//! Integration tests that need root. They fail (never skip) when not run as root: CI runs as root.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod e2e;
mod export;
mod harden;
mod logs;
mod probe;
mod sandbox;
mod supervise;

#[test]
fn running_as_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the root test binary must run as root (CI does): sudo cargo nextest run --test root"
    );
}
