//! Small value types of the policy file, each validated while it is deserialized so that a bad
//! value is reported at its own line and column.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A permission mode written as an octal string (`"0440"`, `"440"` or `"0o440"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(pub u32);

impl Mode {
    /// Parses an octal mode string; only permission bits (at most `0o7777`) are allowed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(format!(
                "invalid mode {s:?}: expected an octal string of up to four digits, like \"0440\""
            ));
        }
        let value = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
        Ok(Self(value))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal mode string like \"0440\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                Mode::parse(s).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Mode, E> {
                Err(E::custom(format!(
                    "mode must be a quoted octal string (write \"{n:04}\", not {n}): \
                     a bare number is ambiguous between decimal and octal"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written like `"15s"`, `"10m"`, `"1h 30m"` or `"500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration {s:?}: {e} (examples: \"15s\", \"10m\", \"2h\")"
                ))
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A byte size written like `"100MiB"`, `"1GB"`, `"512k"` or `"4096"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses a size with an optional binary (`KiB`, `MiB`, `GiB`) or decimal (`KB`, `MB`, `GB`)
    /// unit; `k`, `m`, `g` alone are binary.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid size {s:?}: expected a number and a unit, like \"100MiB\"")
        })?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            other => {
                return Err(format!(
                    "invalid size {s:?}: unknown unit {other:?} (use KiB, MiB or GiB)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size {s:?}: too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"100MiB\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                ByteSize::parse(s).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom("size must not be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A user or group name as `useradd`/`groupadd` accept it by default: a lowercase letter or
/// underscore, then lowercase letters, digits, `_` or `-`, at most 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountName(pub String);

impl AccountName {
    /// Checks the name against the portable account-name rules.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_first = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let ok_rest = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if s.is_empty() || s.len() > 32 || !ok_first || !ok_rest {
            return Err(format!(
                "invalid account name {s:?}: use 1-32 characters, a lowercase letter or '_' first, \
                 then lowercase letters, digits, '_' or '-'"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AccountName::parse(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("0440").unwrap().0, 0o440);
        assert_eq!(Mode::parse("750").unwrap().0, 0o750);
        assert_eq!(Mode::parse("0o2750").unwrap().0, 0o2750);
        assert!(Mode::parse("0890").is_err());
        assert!(Mode::parse("").is_err());
        assert!(Mode::parse("07777").is_err());
        assert_eq!(Mode(0o440).to_string(), "0440");
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("100MiB").unwrap().0, 100 << 20);
        assert_eq!(ByteSize::parse("1GB").unwrap().0, 1_000_000_000);
        assert_eq!(ByteSize::parse("512k").unwrap().0, 512 << 10);
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("MiB").is_err());
    }

    #[test]
    fn account_names() {
        assert!(AccountName::parse("aiuser").is_ok());
        assert!(AccountName::parse("_svc-1").is_ok());
        assert!(AccountName::parse("AIuser").is_err());
        assert!(AccountName::parse("1user").is_err());
        assert!(AccountName::parse("a b").is_err());
        assert!(AccountName::parse(&"a".repeat(33)).is_err());
    }
}
