//! warden runs a self-hosted AI model service in production safely, from one policy file.
//!
//! The binary is a thin shell over this library: `cli` defines the flags, `commands` runs one
//! subcommand each, and the domain modules below do the work.

pub mod account;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod export;
pub mod init;
pub mod integrity;
pub mod logs;
pub mod perms;
pub mod policy;
pub mod sandbox;
pub mod scan;
pub mod supervise;
pub mod sys;
pub mod term;
