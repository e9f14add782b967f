//! Splitting a client's byte stream into top-level JSON values, the way QEMU's JSON lexer and
//! "streamer" do it, so that clients see the same replies to the same bytes.
//!
//! A read may carry several values, part of one, or one spread over many reads; newlines are
//! optional. The lexer recognizes tokens (with QEMU's extensions: single-quoted strings);
//! tokens are collected until braces and brackets balance, then parsed as one value. What
//! QEMU does with bad input, we do:
//!
//! - a byte that cannot continue or start a token is "stray": one error (`JSON parse error,
//!   stray '…'`, the partial token included), the collected tokens are dropped, and the lexer
//!   skips input until a structural character (`{}[]:,`), a control character other than
//!   tab (newline!) or a `0xFE`/`0xFF` byte — the resynchronization points;
//! - limits: 64 MiB of token text per value, 2 Mi tokens, nesting deeper than 1024 — each is
//!   one error and the value is dropped;
//! - a complete but invalid value (`{"a" 1}`, `tru`) is one `JSON parse error, …` error.
//!
//! Memory stays bounded by the limits, whatever the client sends.

use serde_json::Value;

use crate::json_parse;
use crate::qjson;

/// Most bytes of token text one value may have (`MAX_TOKEN_SIZE`).
pub const MAX_TOKEN_SIZE: usize = 64 << 20;
/// Most tokens one value may have (`MAX_TOKEN_COUNT`).
pub const MAX_TOKEN_COUNT: usize = 2 << 20;
/// Deepest nesting of objects and arrays (`MAX_NESTING`).
pub const MAX_NESTING: i64 = 1 << 10;

/// What the splitter found: a JSON value, or QEMU's description of why there is none.
pub type Item = Result<Value, String>;

/// The kind of a lexical token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Comma,
    Colon,
    Integer,
    Float,
    Keyword,
    String,
}

/// A lexical token with its text (empty for structural characters).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) text: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Recovery,
    Dq,
    DqEscape,
    Sq,
    SqEscape,
    Zero,
    Digits,
    Sign,
    Mantissa,
    MantissaDigits,
    ExpE,
    ExpSign,
    ExpDigits,
    Keyword,
}

/// What a byte does in a state.
enum Step {
    /// Go to a non-terminal state.
    To(State),
    /// A token is complete.
    Emit(Kind),
    /// Back to the start state, dropping the token text (whitespace, resynchronization).
    Restart,
    /// A lexical error.
    Error,
}

/// Where the lexer goes on `ch` in `state`, and whether it consumed `ch` (a `false` means
/// the byte is looked at again from the next state).
fn step(state: State, ch: u8) -> (Step, bool) {
    use State::*;
    let digit = ch.is_ascii_digit();
    let consumed = |s| (s, true);
    let lookahead = |s| (s, false);
    match state {
        Start => consumed(match ch {
            b'"' => Step::To(Dq),
            b'\'' => Step::To(Sq),
            b'0' => Step::To(Zero),
            b'1'..=b'9' => Step::To(Digits),
            b'-' => Step::To(Sign),
            b'{' => Step::Emit(Kind::LCurly),
            b'}' => Step::Emit(Kind::RCurly),
            b'[' => Step::Emit(Kind::LSquare),
            b']' => Step::Emit(Kind::RSquare),
            b',' => Step::Emit(Kind::Comma),
            b':' => Step::Emit(Kind::Colon),
            b'a'..=b'z' => Step::To(Keyword),
            b' ' | b'\t' | b'\r' | b'\n' => Step::Restart,
            _ => Step::Error,
        }),
        Recovery => match ch {
            b'\t' => consumed(Step::To(Recovery)),
            0..=0x1F | 0xFE | 0xFF | b'[' | b']' | b'{' | b'}' | b':' | b',' => lookahead(Step::Restart),
            _ => consumed(Step::To(Recovery)),
        },
        Dq | Sq => {
            let (quote, escape, same) = if state == Dq {
                (b'"', DqEscape, Dq)
            } else {
                (b'\'', SqEscape, Sq)
            };
            consumed(match ch {
                c if c == quote => Step::Emit(Kind::String),
                b'\\' => Step::To(escape),
                0x20..=0xFD => Step::To(same),
                _ => Step::Error,
            })
        }
        DqEscape | SqEscape => consumed(match ch {
            0x20..=0xFD => Step::To(if state == DqEscape { Dq } else { Sq }),
            _ => Step::Error,
        }),
        Zero => match ch {
            b'0'..=b'9' => consumed(Step::Error),
            b'.' => consumed(Step::To(Mantissa)),
            _ => lookahead(Step::Emit(Kind::Integer)),
        },
        Digits => match ch {
            _ if digit => consumed(Step::To(Digits)),
            b'e' | b'E' => consumed(Step::To(ExpE)),
            b'.' => consumed(Step::To(Mantissa)),
            _ => lookahead(Step::Emit(Kind::Integer)),
        },
        Sign => consumed(match ch {
            b'0' => Step::To(Zero),
            b'1'..=b'9' => Step::To(Digits),
            _ => Step::Error,
        }),
        Mantissa => consumed(if digit { Step::To(MantissaDigits) } else { Step::Error }),
        MantissaDigits => match ch {
            _ if digit => consumed(Step::To(MantissaDigits)),
            b'e' | b'E' => consumed(Step::To(ExpE)),
            _ => lookahead(Step::Emit(Kind::Float)),
        },
        ExpE => consumed(match ch {
            b'+' | b'-' => Step::To(ExpSign),
            _ if digit => Step::To(ExpDigits),
            _ => Step::Error,
        }),
        ExpSign => consumed(if digit { Step::To(ExpDigits) } else { Step::Error }),
        ExpDigits => {
            if digit {
                consumed(Step::To(ExpDigits))
            } else {
                lookahead(Step::Emit(Kind::Float))
            }
        }
        Keyword => {
            if ch.is_ascii_lowercase() {
                consumed(Step::To(Keyword))
            } else {
                lookahead(Step::Emit(Kind::Keyword))
            }
        }
    }
}

/// Splits a byte stream into JSON values; one per client connection.
#[derive(Debug)]
pub struct Splitter {
    state: State,
    /// Text of the token being lexed.
    token: Vec<u8>,
    /// Tokens of the value being collected.
    tokens: Vec<Token>,
    brace: i64,
    bracket: i64,
    token_size: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter::new()
    }
}

impl Splitter {
    /// A splitter at the start of a stream.
    pub fn new() -> Splitter {
        Splitter {
            state: State::Start,
            token: Vec::new(),
            tokens: Vec::new(),
            brace: 0,
            bracket: 0,
            token_size: 0,
        }
    }

    /// Feeds `bytes`; every value or error they complete goes to `out`, in stream order.
    pub fn feed(&mut self, bytes: &[u8], out: &mut dyn FnMut(Item)) {
        for &ch in bytes {
            self.feed_byte(ch, out);
        }
    }

    /// Feeds `bytes` and collects what they complete.
    pub fn feed_collect(&mut self, bytes: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        self.feed(bytes, &mut |item| items.push(item));
        items
    }

    fn feed_byte(&mut self, ch: u8, out: &mut dyn FnMut(Item)) {
        loop {
            let (next, consumed) = step(self.state, ch);
            if consumed {
                self.token.push(ch);
            }
            match next {
                Step::To(state) => self.state = state,
                Step::Emit(kind) => {
                    let text = std::mem::take(&mut self.token);
                    self.token_done(kind, text, out);
                    self.state = State::Start;
                }
                Step::Restart => {
                    self.token.clear();
                    self.state = State::Start;
                }
                Step::Error => {
                    let desc = format!("JSON parse error, stray '{}'", qjson::lossy(&self.token));
                    self.token.clear();
                    self.emit(Err(desc), out);
                    self.state = State::Recovery;
                }
            }
            if self.state == State::Recovery {
                self.token.clear();
            }
            if consumed {
                break;
            }
        }
        if self.token.len() > MAX_TOKEN_SIZE {
            self.token.clear();
            self.state = State::Start;
            self.emit(Err("JSON token size limit exceeded".into()), out);
        }
    }

    /// A complete token: count nesting, enforce the limits, parse when balanced.
    fn token_done(&mut self, kind: Kind, text: Vec<u8>, out: &mut dyn FnMut(Item)) {
        match kind {
            Kind::LCurly => self.brace += 1,
            Kind::RCurly => self.brace -= 1,
            Kind::LSquare => self.bracket += 1,
            Kind::RSquare => self.bracket -= 1,
            _ => {}
        }
        let limit = if self.token_size + text.len() + 1 > MAX_TOKEN_SIZE {
            Some("JSON token size limit exceeded")
        } else if self.tokens.len() + 1 > MAX_TOKEN_COUNT {
            Some("JSON token count limit exceeded")
        } else if self.brace + self.bracket > MAX_NESTING {
            Some("JSON nesting depth limit exceeded")
        } else {
            None
        };
        if let Some(desc) = limit {
            self.emit(Err(desc.into()), out);
            return;
        }
        self.token_size += text.len();
        // Structural tokens need no text; dropping it keeps big values' memory to the text.
        self.tokens.push(Token { kind, text });
        let open = self.brace > 0 || self.bracket > 0;
        if open && self.brace >= 0 && self.bracket >= 0 {
            return;
        }
        let item = json_parse::parse(&self.tokens);
        self.emit(item, out);
    }

    /// Hands `item` out and starts collecting the next value.
    fn emit(&mut self, item: Item, out: &mut dyn FnMut(Item)) {
        self.brace = 0;
        self.bracket = 0;
        self.tokens.clear();
        self.token_size = 0;
        out(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split(chunks: &[&[u8]]) -> Vec<Item> {
        let mut s = Splitter::new();
        chunks.iter().flat_map(|c| s.feed_collect(c)).collect()
    }

    #[test]
    fn several_values_per_read_and_one_value_over_many_reads() {
        let items = split(&[b"{\"a\": 1}{\"b\"", b": [2, 3]}\n", b"  42 "]);
        assert_eq!(
            items,
            vec![Ok(json!({"a": 1})), Ok(json!({"b": [2, 3]})), Ok(json!(42))]
        );
        // A number is complete only when a byte that cannot continue it arrives.
        assert_eq!(split(&[b"12"]), vec![]);
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let input = br#"{"execute": "x", "arguments": {"s": "a\"}", 'q': [1.5e3, -0, true]}}"#;
        let whole = split(&[input]);
        let mut s = Splitter::new();
        let bytewise: Vec<Item> = input.iter().flat_map(|b| s.feed_collect(&[*b])).collect();
        assert_eq!(whole, bytewise);
        assert_eq!(whole.len(), 1);
        assert_eq!(
            whole[0].as_ref().map(|v| v["arguments"]["s"].clone()),
            Ok(json!("a\"}"))
        );
    }

    #[test]
    fn stray_byte_is_one_error_then_skips_to_a_resync_point() {
        let items = split(&[b"@@@ \"junk\" {\"a\": 1}"]);
        assert_eq!(
            items,
            vec![Err("JSON parse error, stray '@'".to_string()), Ok(json!({"a": 1}))]
        );
        // A stray byte inside a value drops what was collected; the rest resynchronizes.
        let items = split(&[b"{\"a\": @ 1}\n{}"]);
        assert_eq!(
            items,
            vec![
                Err("JSON parse error, stray '@'".to_string()),
                Err("JSON parse error, expecting value".to_string()),
                Ok(json!({}))
            ]
        );
    }

    #[test]
    fn control_characters_in_strings_and_bad_numbers_are_stray() {
        // Recovery skips the rest of the line, the number included.
        assert_eq!(
            split(&[b"\"ab\ncd\" 1 {"]),
            vec![Err("JSON parse error, stray '\"ab\n'".to_string())]
        );
        assert_eq!(
            split(&[b"\"ab\ncd\"\n1 "]),
            vec![Err("JSON parse error, stray '\"ab\n'".to_string()), Ok(json!(1))]
        );
        assert_eq!(split(&[b"012 "]), vec![Err("JSON parse error, stray '01'".to_string())]);
        assert_eq!(
            split(&[b"\xff\xff"]),
            vec![
                Err("JSON parse error, stray '\u{FFFD}'".to_string()),
                Err("JSON parse error, stray '\u{FFFD}'".to_string())
            ]
        );
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("{}{}", "[".repeat(1024), "]".repeat(1024));
        assert!(split(&[ok.as_bytes()])[0].is_ok());
        let deep = format!("{}{}", "[".repeat(1025), "]".repeat(1025));
        let items = split(&[deep.as_bytes()]);
        assert_eq!(items[0], Err("JSON nesting depth limit exceeded".to_string()));
        // The closing brackets that follow are each an unbalanced value.
        assert!(items[1..].iter().all(|i| i.is_err()));
        assert_eq!(split(&[b"[]"]), vec![Ok(json!([]))]);
    }

    #[test]
    fn megabyte_tokens_are_fine_and_junk_is_one_error() {
        let big = format!("{{\"s\": \"{}\"}}", "x".repeat(1 << 20));
        let items = split(&[big.as_bytes()]);
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].as_ref().map(|v| v["s"].as_str().map(str::len)),
            Ok(Some(1 << 20))
        );
        let junk = format!("{}\n", "y".repeat(1 << 20));
        let items = split(&[junk.as_bytes()]);
        assert_eq!(items.len(), 1);
        let desc = items[0].clone().unwrap_err();
        // One token; its message cut after 1023 bytes, as QEMU cuts it.
        let kept = 1023 - "invalid keyword '".len();
        assert_eq!(desc, format!("JSON parse error, invalid keyword '{}", "y".repeat(kept)));
    }

    #[test]
    fn token_size_limit() {
        let mut s = Splitter::new();
        let chunk = vec![b'a'; 1 << 20];
        let mut items = s.feed_collect(b"[\"");
        for _ in 0..63 {
            items.extend(s.feed_collect(&chunk));
        }
        assert!(items.is_empty());
        // The string token passes 64 MiB within the last chunk.
        items.extend(s.feed_collect(&chunk));
        assert_eq!(items, vec![Err("JSON token size limit exceeded".to_string())]);
        // The splitter is usable again after a resync point.
        assert_eq!(s.feed_collect(b"\n{}"), vec![Ok(json!({}))]);
    }
}
