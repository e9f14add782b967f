//! JSON text the way QEMU writes it, so our replies are byte-for-byte comparable with a real
//! QEMU's: `{"a": 1, "b": [1, 2]}` spacing, non-ASCII escaped as `\uXXXX`, doubles as C's
//! `%.17g`, and object members in the order QEMU's hash-table `QDict` iterates them.
//!
//! QEMU 10.0's `QDict` is a 512-bucket hash table (gdbm's hash); iteration walks the buckets
//! in order and, inside a bucket, the most recently inserted key first. Clients never depend
//! on the order, but transcripts do, so we reproduce it: members are sorted by bucket, and
//! keys sharing a bucket come newest-first relative to the order of our (insertion-ordered)
//! map. Values built in QAPI schema order therefore print exactly as QEMU prints them.

use serde_json::{Map, Number, Value};

/// Number of buckets in QEMU's `QDict` (`QDICT_BUCKET_MAX`).
const BUCKETS: u32 = 512;

/// The bucket QEMU's `QDict` puts `key` in.
fn bucket(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let mut value = 0x238F_13AFu32.wrapping_mul(bytes.len() as u32);
    for (i, &b) in bytes.iter().enumerate() {
        value = value.wrapping_add(u32::from(b) << ((i * 5) % 24));
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345) % BUCKETS
}

/// The members of `map` in the order QEMU prints them.
pub(crate) fn qemu_order(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut members: Vec<(usize, &String, &Value)> = map.iter().enumerate().map(|(i, (k, v))| (i, k, v)).collect();
    members.sort_by_key(|&(i, k, _)| (bucket(k), std::cmp::Reverse(i)));
    members.into_iter().map(|(_, k, v)| (k, v)).collect()
}

/// `value` as compact JSON text, formatted like QEMU's JSON writer.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in qemu_order(map).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&format_g17(f));
    }
}

/// C's `printf("%.17g", f)` for a finite `f`.
pub(crate) fn format_g17(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".to_string()
        } else if f > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        };
    }
    // 17 significant digits, correctly rounded: "d.dddddddddddddddde<exp>".
    let sci = format!("{:.16e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..17).contains(&exp) {
        let (int_part, frac_part) = if exp >= 0 {
            let split = (exp + 1) as usize;
            (digits[..split].to_string(), digits[split..].to_string())
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            ("0".to_string(), format!("{zeros}{digits}"))
        };
        let frac = frac_part.trim_end_matches('0');
        if frac.is_empty() {
            format!("{sign}{int_part}")
        } else {
            format!("{sign}{int_part}.{frac}")
        }
    } else {
        let frac = digits[1..].trim_end_matches('0');
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let point = if frac.is_empty() { "" } else { "." };
        format!(
            "{sign}{}{point}{frac}e{exp_sign}{:02}",
            &digits[..1],
            exp.unsigned_abs()
        )
    }
}

/// A JSON string literal, escaped the way QEMU escapes it.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) > 0xFFFF => {
                let v = c as u32 - 0x10000;
                out.push_str(&format!("\\u{:04X}\\u{:04X}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)));
            }
            c if (c as u32) < 0x20 || (c as u32) >= 0x7F => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether QEMU accepts `cp` as a character (no surrogates, no noncharacters).
pub(crate) fn is_valid_codepoint(cp: i64) -> bool {
    (0..=0x10FFFF).contains(&cp)
        && (cp & 0xFFFF_F800) != 0xD800
        && !(0xFDD0..=0xFDEF).contains(&cp)
        && (cp & 0xFFFE) != 0xFFFE
}

/// Decodes one character of QEMU's "modified UTF-8" (NUL may be `C0 80`) at the start of
/// `bytes`: the code point (`None` when invalid) and how many bytes it took.
pub(crate) fn mod_utf8_char(bytes: &[u8]) -> (Option<char>, usize) {
    const MIN: [u32; 5] = [0x80, 0x800, 0x10000, 0x20_0000, 0x400_0000];
    let Some(&first) = bytes.first() else {
        return (None, 0);
    };
    if first < 0x80 {
        return (Some(char::from(first)), 1);
    }
    if first >= 0xFE || first & 0x40 == 0 {
        return (None, 1);
    }
    let len = first.leading_ones() as usize;
    let mut cp = u32::from(first) & (0x7F >> len);
    for i in 1..len {
        match bytes.get(i) {
            Some(&b) if b & 0xC0 == 0x80 => cp = (cp << 6) | u32::from(b & 0x3F),
            _ => return (None, i),
        }
    }
    let overlong = cp < MIN[len - 2] && !(cp == 0 && len == 2);
    if overlong || !is_valid_codepoint(i64::from(cp)) {
        return (None, len);
    }
    (char::from_u32(cp), len)
}

/// `bytes` as text, each invalid sequence replaced by U+FFFD (what QEMU's writer prints for
/// bytes that are not modified UTF-8).
pub(crate) fn lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let (c, used) = mod_utf8_char(rest);
        out.push(c.unwrap_or('\u{FFFD}'));
        rest = &rest[used.max(1)..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn greeting_members_come_in_qemus_bucket_order() {
        let v = json!({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": "p"});
        assert_eq!(
            to_string(&v),
            r#"{"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "p"}"#
        );
        let e = json!({"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}});
        assert_eq!(
            to_string(&e),
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#
        );
        assert_eq!(to_string(&json!({"return": {}, "id": 1})), r#"{"return": {}, "id": 1}"#);
        assert_eq!(
            to_string(&json!({"error": {"class": "A", "desc": "b"}, "id": [1, 2]})),
            r#"{"id": [1, 2], "error": {"class": "A", "desc": "b"}}"#
        );
    }

    #[test]
    fn doubles_print_like_percent_17g() {
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1.0), "1");
        assert_eq!(format_g17(-2.5), "-2.5");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(format_g17(-0.0), "-0");
    }

    #[test]
    fn strings_escape_non_ascii_and_controls() {
        let mut s = String::new();
        write_str(&mut s, "a\"\\/\n\u{1}é😀\u{7f}");
        assert_eq!(s, r#""a\"\\/\n\u0001\u00E9\uD83D\uDE00\u007F""#);
    }

    #[test]
    fn modified_utf8_rules() {
        assert_eq!(mod_utf8_char(&[0xC0, 0x80]), (Some('\0'), 2));
        assert_eq!(mod_utf8_char(&[0xC1, 0x81]), (None, 2));
        assert_eq!(mod_utf8_char(&[0xED, 0xA0, 0x80]), (None, 3));
        assert_eq!(mod_utf8_char(&[0xEF, 0xBF, 0xBE]), (None, 3));
        assert_eq!(mod_utf8_char(&[0xE2, 0x28]), (None, 1));
        assert_eq!(mod_utf8_char(&[0xFF]), (None, 1));
        assert_eq!(lossy(b"a\xffb"), "a\u{FFFD}b");
    }
}
