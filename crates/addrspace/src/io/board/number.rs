//! Numbers in board files: a TOML integer, or a string such as `"0x1000"`, `"64K"` or
//! `"2^64"` (sizes reach 2^64, which no TOML integer can hold).

use serde::{Deserialize, Serialize};

/// A number written as a TOML integer or as a string (`"0x1000"`, `"64K"`, `"2^64"`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Number {
    /// A TOML integer.
    Int(i64),
    /// A string: `0x` hex, `2^N`, or decimal with an optional K/M/G/T/P/E binary suffix.
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

/// Parses `2^N` (N <= 64), `0x` + hex digits, or decimal digits with an optional byte
/// suffix: `B`, or `K`/`M`/`G`/`T`/`P`/`E` followed by nothing, `B` or `iB` (any case).
/// Suffixes apply to decimal numbers only: every letter after `0x` is a hex digit, so
/// `"0x1b"` is 27 (not 1 byte) and `"0x1e"` is 30 (not 1 EiB). `_` separators are ignored.
pub(super) fn parse_number(s: &str) -> std::result::Result<u128, String> {
    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
    let bad = || format!("`{s}` is not a number (use 4096, \"0x1000\", \"4K\", \"2^64\")");
    let too_big = || format!("`{s}` exceeds 2^64");
    // Digits only (`from_str_radix` alone would also take a sign).
    let digits = |d: &str, radix: u32| -> std::result::Result<u128, String> {
        if d.is_empty() || !d.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        u128::from_str_radix(d, radix).map_err(|_| too_big())
    };
    let lower = t.to_ascii_lowercase();
    if let Some(e) = lower.strip_prefix("2^") {
        let e = digits(e, 10)?;
        return if e <= 64 { Ok(1 << e) } else { Err(too_big()) };
    }
    if let Some(h) = lower.strip_prefix("0x") {
        return digits(h, 16);
    }
    let end = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (d, suffix) = lower.split_at(end);
    let shift = match suffix.as_bytes() {
        [] | [b'b'] => 0,
        [unit] | [unit, b'b'] | [unit, b'i', b'b'] => {
            let k = "kmgtpe".bytes().position(|c| c == *unit).ok_or_else(bad)?;
            10 * (k as u32 + 1)
        }
        _ => return Err(bad()),
    };
    let v = digits(d, 10)?;
    v.checked_shl(shift).filter(|r| r >> shift == v).ok_or_else(too_big)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::region::SIZE_2_64;

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

    /// Hex digits are digits: `b` is a digit of `0x1b`, not a byte suffix.
    #[test]
    fn hex_digits_are_not_suffixes() {
        for (s, v) in [
            ("0x1b", 0x1b),
            ("0xab", 0xab),
            ("0xb", 0xb),
            ("0XB", 0xb),
            ("0xc35b", 0xc35b),
        ] {
            assert_eq!(parse_number(s), Ok(v), "`{s}`");
        }
        // Suffixes are for decimal numbers only.
        for s in ["0x1K", "0x10M", "0x1kib", "0x"] {
            assert!(parse_number(s).is_err(), "`{s}` should be refused");
        }
    }

    /// A simple reference grammar: `2^N` (N <= 64), `0x` + hex digits, or decimal digits
    /// with an optional `B`, or `K`/`M`/`G`/`T`/`P`/`E` followed by nothing, `B` or `iB`
    /// (any case); `_` anywhere and surrounding blanks are ignored.
    fn reference(s: &str) -> Option<u128> {
        let t: String = s.trim().chars().filter(|&c| c != '_').collect();
        let t = t.to_ascii_lowercase();
        let digits = |d: &str, radix: u32| -> Option<u128> {
            if d.is_empty() || !d.chars().all(|c| c.is_digit(radix)) {
                return None;
            }
            u128::from_str_radix(d, radix).ok()
        };
        if let Some(e) = t.strip_prefix("2^") {
            return digits(e, 10).filter(|&e| e <= 64).map(|e| 1 << e);
        }
        if let Some(h) = t.strip_prefix("0x") {
            return digits(h, 16);
        }
        let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (d, suffix) = t.split_at(end);
        let shift = match suffix {
            "" | "b" => 0,
            _ => {
                let unit = suffix.chars().next()?;
                let k = "kmgtpe".find(unit)? as u32 + 1;
                if !matches!(&suffix[1..], "" | "b" | "ib") {
                    return None;
                }
                10 * k
            }
        };
        let v = digits(d, 10)?;
        v.checked_shl(shift).filter(|r| r >> shift == v)
    }

    /// Every accepted spelling of `v` (string forms, and TOML integers where they fit).
    fn spellings(v: u128) -> Vec<String> {
        let mut out = vec![format!("\"{v}\""), format!("\"{v}B\""), format!("\"{v:#x}\"")];
        out.push(format!("\"0x{v:X}\""));
        out.push(format!("\"0X{v:x}\""));
        for (k, unit) in "KMGTPE".chars().enumerate() {
            let shift = 10 * (k as u32 + 1);
            if v % (1 << shift) == 0 {
                let n = v >> shift;
                let l = unit.to_ascii_lowercase();
                out.extend([
                    format!("\"{n}{unit}\""),
                    format!("\"{n}{l}\""),
                    format!("\"{n}{unit}iB\""),
                    format!("\"{n}{unit}B\""),
                ]);
            }
        }
        if v.is_power_of_two() {
            out.push(format!("\"2^{}\"", v.trailing_zeros()));
        }
        if i64::try_from(v).is_ok() {
            out.extend([format!("{v}"), format!("{v:#x}")]);
        }
        out
    }

    fn via_toml(spelling: &str) -> std::result::Result<u128, String> {
        #[derive(Deserialize)]
        struct T {
            x: Number,
        }
        let t: T = toml::from_str(&format!("x = {spelling}")).map_err(|e| e.to_string())?;
        t.x.value()
    }

    fn interesting() -> impl Strategy<Value = u128> {
        prop_oneof![
            any::<u64>().prop_map(u128::from),
            (0u32..=64).prop_map(|e| 1u128 << e),
            (0u32..64, 1u64..64).prop_map(|(e, m)| u128::from(m) << e),
            (0u128..0x1_0000),
        ]
        .prop_filter("at most 2^64", |&v| v <= SIZE_2_64)
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every value printed in every accepted spelling parses back to itself.
        #[test]
        fn every_spelling_parses_back(v in interesting()) {
            for s in spellings(v) {
                prop_assert_eq!(via_toml(&s), Ok(v), "spelling {}", s);
            }
        }

        /// The parser agrees with the reference grammar on strings made of the characters
        /// numbers are written with.
        #[test]
        fn agrees_with_the_reference(s in "[0-9a-fA-FxXkKmMgGtTpPiIbB^_ ]{0,12}|(0x|2\\^)?[0-9a-fA-F]{0,6}[kKmMgGtTpPeEiIbB]{0,3}") {
            prop_assert_eq!(parse_number(&s).ok(), reference(&s), "`{}`", s);
        }
    }
}
