//! The service's output: captured through a pipe (the service never holds a writable log file)
//! and written into the log directory.

pub mod capture;
