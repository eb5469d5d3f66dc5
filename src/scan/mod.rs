//! Content-based detection of model file formats.
