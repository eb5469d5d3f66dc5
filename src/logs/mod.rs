//! The service's output: captured through a pipe (the service never holds a writable log file),
//! split into lines, filtered by level, redacted, and written into the log directory with
//! rotation between lines.

pub mod capture;
pub mod frame;
pub mod level;
pub mod redact;
