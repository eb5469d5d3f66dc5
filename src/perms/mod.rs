//! Ownership and modes of the deployment tree: a pure plan (desired vs observed) and its application through `sys`.
