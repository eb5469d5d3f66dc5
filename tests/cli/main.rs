//! Integration tests that need no privileges: the `warden` binary run as a subprocess.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod export;
mod harden;
mod init;
mod logs;
mod scan;
mod seal;
mod validate;
