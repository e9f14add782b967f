//! Checking a command's `arguments` object the way QEMU's QAPI input visitor does: members
//! are visited in schema order (the first missing or mistyped one is the error), then any
//! member nobody asked for is "unexpected". Messages are QEMU's, word for word.

use serde_json::{Map, Value};

use crate::error::QmpError;

/// QAPI's name for the JSON type a member should have.
#[derive(Debug, Clone, Copy)]
enum Expected {
    String,
    Integer,
    Array,
}

impl Expected {
    fn as_str(self) -> &'static str {
        match self {
            Expected::String => "string",
            Expected::Integer => "integer",
            Expected::Array => "array",
        }
    }
}

fn wrong_type(name: &str, expected: Expected) -> QmpError {
    QmpError::generic(format!(
        "Invalid parameter type for '{name}', expected: {}",
        expected.as_str()
    ))
}

/// A command's arguments being visited.
pub(crate) struct Args<'a> {
    map: &'a Map<String, Value>,
    visited: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// Starts visiting `map`.
    pub(crate) fn new(map: &'a Map<String, Value>) -> Args<'a> {
        Args {
            map,
            visited: Vec::new(),
        }
    }

    fn get(&mut self, name: &str) -> Option<&'a Value> {
        let (key, value) = self.map.get_key_value(name)?;
        self.visited.push(key.as_str());
        Some(value)
    }

    /// A required string member.
    pub(crate) fn required_str(&mut self, name: &str) -> Result<String, QmpError> {
        self.optional_str(name)?
            .ok_or_else(|| QmpError::generic(format!("Parameter '{name}' is missing")))
    }

    /// An optional string member.
    pub(crate) fn optional_str(&mut self, name: &str) -> Result<Option<String>, QmpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong_type(name, Expected::String)),
        }
    }

    /// An optional `int` member (a JSON number that fits an `i64`; no fractions).
    pub(crate) fn optional_int(&mut self, name: &str) -> Result<Option<i64>, QmpError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| wrong_type(name, Expected::Integer)),
        }
    }

    /// An optional list of an enum whose values are `allowed`.
    pub(crate) fn optional_enum_list(&mut self, name: &str, allowed: &[&str]) -> Result<Option<Vec<String>>, QmpError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(wrong_type(name, Expected::Array));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Value::String(s) = item else {
                return Err(wrong_type(&format!("{name}[{i}]"), Expected::String));
            };
            if !allowed.contains(&s.as_str()) {
                // QEMU visits list elements without a name and prints "null" for it.
                return Err(QmpError::generic(format!(
                    "Parameter 'null' does not accept value '{s}'"
                )));
            }
            out.push(s.clone());
        }
        Ok(Some(out))
    }

    /// Ends the visit: a member that was never asked for is an error.
    pub(crate) fn finish(self) -> Result<(), QmpError> {
        match self.map.keys().find(|k| !self.visited.contains(&k.as_str())) {
            Some(extra) => Err(QmpError::generic(format!("Parameter '{extra}' is unexpected"))),
            None => Ok(()),
        }
    }
}

/// QEMU's `id_wellformed`: a letter, then letters, digits, `-`, `.` and `_`.
pub(crate) fn id_wellformed(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Splits QEMU option text (`a,b=c,d`) at commas; `,,` is a literal comma.
pub(crate) fn split_opts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ',' {
            current.push(c);
        } else if chars.peek() == Some(&',') {
            chars.next();
            current.push(',');
        } else {
            parts.push(std::mem::take(&mut current));
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn messages_match_qapi_visitor() {
        let m = map(json!({"id": 1, "n": 1.5, "l": ["oob", 3], "e": ["x"], "s": "v"}));
        let mut a = Args::new(&m);
        fn desc<T: std::fmt::Debug>(r: Result<T, QmpError>) -> String {
            r.expect_err("should fail").desc
        }
        assert_eq!(desc(a.required_str("missing")), "Parameter 'missing' is missing");
        assert_eq!(
            desc(a.required_str("id")),
            "Invalid parameter type for 'id', expected: string"
        );
        assert_eq!(
            desc(a.optional_int("n")),
            "Invalid parameter type for 'n', expected: integer"
        );
        assert_eq!(
            desc(a.optional_enum_list("s", &["oob"])),
            "Invalid parameter type for 's', expected: array"
        );
        assert_eq!(
            desc(a.optional_enum_list("l", &["oob"])),
            "Invalid parameter type for 'l[1]', expected: string"
        );
        assert_eq!(
            desc(a.optional_enum_list("e", &["oob"])),
            "Parameter 'null' does not accept value 'x'"
        );
        let m = map(json!({"a": "x", "b": 2}));
        let mut a = Args::new(&m);
        assert_eq!(a.optional_str("a").ok(), Some(Some("x".to_string())));
        assert_eq!(desc(a.finish()), "Parameter 'b' is unexpected");
    }

    #[test]
    fn option_text_splits_at_single_commas() {
        assert_eq!(split_opts("a,b=c,,d,"), vec!["a", "b=c,d", ""]);
        assert_eq!(split_opts(""), vec![""]);
    }

    #[test]
    fn identifiers() {
        assert!(id_wellformed("cpu1"));
        assert!(id_wellformed("a-b.c_d"));
        assert!(!id_wellformed("1cpu"));
        assert!(!id_wellformed(""));
        assert!(!id_wellformed("a b"));
        assert!(!id_wellformed("é"));
    }
}
