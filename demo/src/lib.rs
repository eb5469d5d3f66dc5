//! The demo image-edit service.
