//! Model files: content-based format detection (the scanner of what they contain builds on it).

pub mod detect;

pub use detect::{Format, Kind, detect_bytes, detect_path};
