//! Parsing one balanced run of tokens (from [`wire`](crate::wire)) into a JSON value, with
//! QEMU's parser's error messages ("JSON parse error, expecting value", "…, duplicate key",
//! "…, invalid keyword 'tru'") and its string rules (single quotes, `\'`, modified UTF-8,
//! no noncharacters).

use serde_json::{Map, Number, Value};

use crate::qjson;
use crate::wire::{Kind, Token};

/// The longest parser message, in bytes: QEMU 10.0 formats it into a 1024-byte buffer, so a
/// 1 MiB bad keyword comes back as `invalid keyword 'xxx…` cut after 1023 bytes, closing
/// quote included in the cut (its capture's `huge_junk_line`).
const MESSAGE_MAX: usize = 1023;

/// Parses `tokens` (one complete top-level value) into a value or QEMU's error text.
pub(crate) fn parse(tokens: &[Token]) -> Result<Value, String> {
    let mut parser = Parser { tokens, next: 0 };
    parser.value().map_err(|mut message| {
        if message.len() > MESSAGE_MAX {
            // QEMU may cut inside a UTF-8 sequence; we cut at the character boundary before.
            let end = (0..=MESSAGE_MAX)
                .rev()
                .find(|&i| message.is_char_boundary(i))
                .unwrap_or(0);
            message.truncate(end);
        }
        format!("JSON parse error, {message}")
    })
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
}

type Parsed<T> = Result<T, String>;

fn premature() -> String {
    "premature EOI".to_string()
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.next)
    }

    fn pop(&mut self) -> Option<&'a Token> {
        let token = self.tokens.get(self.next);
        self.next += 1;
        token
    }

    fn value(&mut self) -> Parsed<Value> {
        let token = self.peek().ok_or_else(premature)?;
        match token.kind {
            Kind::LCurly => self.object(),
            Kind::LSquare => self.array(),
            Kind::Integer | Kind::Float | Kind::String | Kind::Keyword => {
                self.next += 1;
                literal(token)
            }
            _ => Err("expecting value".to_string()),
        }
    }

    fn object(&mut self) -> Parsed<Value> {
        self.next += 1;
        let mut map = Map::new();
        let peek = self.peek().ok_or_else(premature)?;
        if peek.kind == Kind::RCurly {
            self.next += 1;
            return Ok(Value::Object(map));
        }
        self.pair(&mut map)?;
        loop {
            let token = self.pop().ok_or_else(premature)?;
            match token.kind {
                Kind::RCurly => return Ok(Value::Object(map)),
                Kind::Comma => self.pair(&mut map)?,
                _ => return Err("expected separator in dict".to_string()),
            }
        }
    }

    fn pair(&mut self, map: &mut Map<String, Value>) -> Parsed<()> {
        self.peek().ok_or_else(premature)?;
        let Value::String(key) = self.value()? else {
            return Err("key is not a string in object".to_string());
        };
        let colon = self.pop().ok_or_else(premature)?;
        if colon.kind != Kind::Colon {
            return Err("missing : in object pair".to_string());
        }
        let value = self.value()?;
        if map.contains_key(&key) {
            return Err("duplicate key".to_string());
        }
        map.insert(key, value);
        Ok(())
    }

    fn array(&mut self) -> Parsed<Value> {
        self.next += 1;
        let mut items = Vec::new();
        let peek = self.peek().ok_or_else(premature)?;
        if peek.kind == Kind::RSquare {
            self.next += 1;
            return Ok(Value::Array(items));
        }
        items.push(self.value()?);
        loop {
            let token = self.pop().ok_or_else(premature)?;
            match token.kind {
                Kind::RSquare => return Ok(Value::Array(items)),
                Kind::Comma => items.push(self.value()?),
                _ => return Err("expected separator in list".to_string()),
            }
        }
    }
}

fn literal(token: &Token) -> Parsed<Value> {
    let text = String::from_utf8_lossy(&token.text);
    match token.kind {
        Kind::String => string(&token.text).map(Value::String),
        Kind::Keyword => match &*text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            other => Err(format!("invalid keyword '{other}'")),
        },
        Kind::Integer => Ok(if let Ok(i) = text.parse::<i64>() {
            Value::from(i)
        } else if let Ok(u) = text.parse::<u64>() {
            Value::from(u)
        } else {
            double(&text)
        }),
        _ => Ok(double(&text)),
    }
}

/// A double; QEMU keeps infinities (and then prints invalid JSON), we have no such value and
/// use `null`.
fn double(text: &str) -> Value {
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Four hex digits at the start of `bytes`.
fn hex4(bytes: &[u8]) -> Option<u32> {
    let digits = bytes.get(..4)?;
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// The contents of a string token (quotes included in `token`).
fn string(token: &[u8]) -> Parsed<String> {
    let Some((&quote, body)) = token.split_first() else {
        return Ok(String::new());
    };
    let body = body.strip_suffix(&[quote]).unwrap_or(body);
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            let (c, used) = qjson::mod_utf8_char(&body[i..]);
            let c = c.ok_or_else(|| "invalid UTF-8 sequence in string".to_string())?;
            out.push(c);
            i += used.max(1);
            continue;
        }
        let begin = i;
        let escape = body.get(i + 1).copied().unwrap_or(0);
        i += 2;
        let simple = match escape {
            b'"' => Some('"'),
            b'\'' => Some('\''),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'u' => None,
            _ => return Err("invalid escape sequence in string".to_string()),
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        let mut cp = hex4(&body[i.min(body.len())..]).map_or(-1, i64::from);
        i += 4;
        if (0xD800..=0xDBFF).contains(&cp) && body.get(i..i + 2) == Some(b"\\u") {
            let trailing = hex4(&body[(i + 2).min(body.len())..]).map_or(-1, i64::from);
            if (0xDC00..=0xDFFF).contains(&trailing) {
                cp = 0x10000 + ((cp & 0x3FF) << 10) + (trailing & 0x3FF);
                i += 6;
            } else {
                cp = -1;
            }
        }
        let c = u32::try_from(cp).ok().and_then(char::from_u32);
        match c {
            Some(c) if qjson::is_valid_codepoint(cp) => out.push(c),
            _ => {
                let shown = qjson::lossy(&body[begin..i.min(body.len())]);
                return Err(format!("{shown} is not a valid Unicode character"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::wire::{Item, Splitter};
    use serde_json::json;

    fn one(input: &str) -> Item {
        let mut s = Splitter::new();
        let mut items = s.feed_collect(input.as_bytes());
        items.extend(s.feed_collect(b"\n"));
        assert_eq!(items.len(), 1, "{input}: {items:?}");
        items.remove(0)
    }

    fn err(input: &str) -> String {
        one(input).expect_err(input)
    }

    #[test]
    fn every_parse_error_message() {
        let cases = [
            ("}", "expecting value"),
            ("{\"a\" 1}", "missing : in object pair"),
            ("{\"a\": }", "expecting value"),
            ("{1: 2}", "key is not a string in object"),
            ("{\"a\": 1 \"b\": 2}", "expected separator in dict"),
            ("{\"a\": 1, \"a\": 2}", "duplicate key"),
            ("[1 2]", "expected separator in list"),
            ("[1, ]", "expecting value"),
            ("{\"a\": 1]", "expected separator in dict"),
            ("tru", "invalid keyword 'tru'"),
            ("\"\\x\"", "invalid escape sequence in string"),
            ("\"\\uD800\"", "\\uD800 is not a valid Unicode character"),
            ("\"\\uD800\\u0041\"", "\\uD800 is not a valid Unicode character"),
            ("\"\\uFFFF\"", "\\uFFFF is not a valid Unicode character"),
            ("\"\\u12G4\"", "\\u12G4 is not a valid Unicode character"),
            ("\"\u{FDD0}\"", "invalid UTF-8 sequence in string"),
        ];
        for (input, message) in cases {
            assert_eq!(err(input), format!("JSON parse error, {message}"), "{input}");
        }
    }

    #[test]
    fn long_messages_are_cut_after_1023_bytes_as_qemu_cuts_them() {
        let keyword = "x".repeat(5000);
        let message = format!("invalid keyword '{keyword}'");
        assert_eq!(err(&keyword), format!("JSON parse error, {}", &message[..1023]));
        let fits = "y".repeat(1023 - "invalid keyword ''".len());
        assert_eq!(err(&fits), format!("JSON parse error, invalid keyword '{fits}'"));
    }

    #[test]
    fn values_and_qemus_extensions() {
        assert_eq!(one("'a\\'b\"c'"), Ok(json!("a'b\"c")));
        assert_eq!(one("\"\\uD83D\\uDE00\\u00e9\\/\""), Ok(json!("😀é/")));
        assert_eq!(one("\"\\u0000\""), Ok(json!("\u{0}")));
        assert_eq!(one("18446744073709551615"), Ok(json!(u64::MAX)));
        assert_eq!(one("-9223372036854775808"), Ok(json!(i64::MIN)));
        assert_eq!(one("-9223372036854775809"), Ok(json!(-9223372036854775809.0)));
        assert_eq!(one("1.5e3"), Ok(json!(1500.0)));
        assert_eq!(one("1e400"), Ok(json!(null)));
        assert_eq!(one("[true, false, null]"), Ok(json!([true, false, null])));
        assert_eq!(one("{\"b\": 1, \"a\": {}}"), Ok(json!({"b": 1, "a": {}})));
    }
}
