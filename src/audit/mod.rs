//! The audits: [`check`] (is the deployment production-ready?) and [`probe`] (do real attacks
//! fail?), with their table, JSON and SARIF renderings in [`render`].

pub mod check;
pub mod probe;
pub mod render;

pub use check::{Finding, Severity};
