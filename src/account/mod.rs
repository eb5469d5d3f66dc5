//! The service account: looking up, planning and creating the system user and group.
