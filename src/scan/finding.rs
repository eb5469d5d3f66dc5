//! What the scanner reports: findings with a severity, a rule, and where they are.

use std::fmt;

use serde::Serialize;

/// How bad a finding is. Every finding makes a scan unclean; the severity says how urgent it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An anomaly a loader tolerates (bad CRC, trailing bytes): not dangerous by itself.
    Low,
    /// Content outside what the loader's allowlist accepts, or content that cannot be checked.
    Medium,
    /// File or network access, or a construct that hides what a pickle does.
    High,
    /// Code execution.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable rule id, e.g. `pickle/global`.
    pub rule: &'static str,
    pub message: String,
    /// The archive member the finding is in (`outer.zip/inner.npy` for nested archives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Byte offset in the file, or in the member when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The global a pickle imports (`module.name`), when the finding is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<String>,
}

impl Finding {
    pub fn new(severity: Severity, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity,
            rule,
            message: message.into(),
            member: None,
            offset: None,
            global: None,
        }
    }

    pub fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    pub fn global(mut self, g: impl Into<String>) -> Self {
        self.global = Some(g.into());
        self
    }
}
