//! The only unsafe code: thin wrappers over the system calls warden needs, and over the CPU's
//! vector instructions.
//!
//! Everything here is a small, safe function over one system call (or a documented fallback):
//! no policy, no decisions. Callers get `std::io::Error`s and add the path and the operation.

pub mod fs;
pub mod ids;
pub mod mem;
pub mod process;
pub mod sandbox;
pub(crate) mod simd;
