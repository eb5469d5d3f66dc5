//! The only unsafe code: thin wrappers over the system calls warden needs.
