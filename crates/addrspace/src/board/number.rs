//! Numbers in board files: a TOML integer, or a string such as `"0x1000"`, `"64K"` or
//! `"2^64"` (sizes reach 2^64, which no TOML integer can hold).

use serde::{Deserialize, Serialize};

/// A number written as a TOML integer or as a string (`"0x1000"`, `"64K"`, `"2^64"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// A TOML integer.
    Int(i64),
    /// A string: decimal, `0x` hex, `2^N`, with an optional K/M/G/T/P/E binary suffix.
    Str(String),
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Number, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number: an integer, or a string such as \"0x1000\", \"64K\" or \"2^64\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Number, E> {
                Ok(Number::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Number, E> {
                Ok(i64::try_from(v)
                    .map(Number::Int)
                    .unwrap_or_else(|_| Number::Str(v.to_string())))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Number, E> {
                Ok(Number::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Number {
    /// Written back as it was read: an integer or the same string.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Number::Int(v) => s.serialize_i64(*v),
            Number::Str(v) => s.serialize_str(v),
        }
    }
}

impl Number {
    /// The value, or a description of what is wrong with it.
    pub fn value(&self) -> std::result::Result<u128, String> {
        match self {
            Number::Int(v) => u128::try_from(*v).map_err(|_| format!("negative value {v}")),
            Number::Str(s) => parse_number(s),
        }
    }
}

pub(super) fn parse_number(s: &str) -> std::result::Result<u128, String> {
    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
    let bad = || format!("`{s}` is not a number (use 4096, \"0x1000\", \"4K\", \"2^64\")");
    if let Some(e) = t.strip_prefix("2^") {
        let e: u32 = e.parse().map_err(|_| bad())?;
        return if e <= 64 {
            Ok(1u128 << e)
        } else {
            Err(format!("`{s}` exceeds 2^64"))
        };
    }
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match body.chars().last() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p' | 'e')) if !body.starts_with("0x") || c != 'e' => {
            let shift = 10 * (1 + "kmgtpe".find(c).expect("listed") as u32);
            (&body[..body.len() - 1], shift)
        }
        _ => (body, 0),
    };
    let v = match digits.strip_prefix("0x") {
        Some(h) => u128::from_str_radix(h, 16),
        None => digits.parse::<u128>(),
    }
    .map_err(|_| bad())?;
    v.checked_shl(shift)
        .filter(|r| r >> shift == v)
        .ok_or_else(|| format!("`{s}` exceeds 2^64"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::SIZE_2_64;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("4096"), Ok(4096));
        assert_eq!(parse_number("0x1000"), Ok(4096));
        assert_eq!(parse_number("4K"), Ok(4096));
        assert_eq!(parse_number("4KiB"), Ok(4096));
        assert_eq!(parse_number("512M"), Ok(512 << 20));
        assert_eq!(parse_number("16E"), Ok(SIZE_2_64));
        assert_eq!(parse_number("2^64"), Ok(SIZE_2_64));
        assert_eq!(parse_number("0xffff_ffff"), Ok(0xffff_ffff));
        assert_eq!(parse_number("0xe"), Ok(14), "hex digit e is not the exa suffix");
        assert!(parse_number("2^65").is_err());
        assert!(parse_number("lots").is_err());
        assert!(parse_number("0x1_0000_0000_0000_0000_0000_0000_0000_0000").is_err());
    }
}
