//! Replays QEMU 10.0.2's own answers, read from the repository's reference capture
//! `tests/fixtures/qmp/qemu-10.0.2-q35.jsonl` (a walk of `tests/qmp/qmp_walk.py` against a
//! real `qemu-system-x86_64 -M q35`; see that directory's README.md). A session fed the
//! bytes the walk sent must write the lines QEMU wrote back, byte for byte.
//!
//! Only the protocol steps are replayed: those whose replies do not depend on the machine's
//! state — capability negotiation, argument validation that happens before a command runs,
//! and the whole protocol-error section (parse errors, malformed requests, ids of every
//! type, framing). Their probes (`query-status` after each bad input) answer `running`,
//! which the fake machine is. QEMU's greeting is not replayed: it names QEMU's package and
//! offers `oob`, which we do not (see the crate doc).
//!
//! The bytes sent are rebuilt from each step's `sent` member, as the walk records it: a
//! JSON value was sent as Python's `json.dumps` text plus `"\n"`, which is exactly the
//! member's text in the capture line (Python wrote the line with the same `json.dumps`); a
//! string is the raw text sent (except in [`SENT_AS_JSON_STRING`]: the walk's record does not
//! tell a JSON string sent as a value from raw text), with bytes that are not UTF-8 recorded as Python
//! `backslashreplace` escapes (`\xff`); strings over 4096 characters (the 1 MiB steps) are
//! recorded as `<abbreviated N chars: HEAD...TAIL>` and rebuilt by repeating HEAD's last
//! character, which `sent_bytes` checks. Our lines get the same abbreviation before they
//! are compared with the capture's `raw` lines.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use addrspace_monitor::{Events, Session};
use serde_json::value::RawValue;
use serde_json::Value;
use support::Fake;

/// The capture, relative to this crate.
const CAPTURE: &str = "../../tests/fixtures/qmp/qemu-10.0.2-q35.jsonl";

/// Negotiation steps, replayed in this order on a fresh, unnegotiated session.
const NEGOTIATION: &[&str] = &[
    "before_negotiation",
    "qmp_capabilities",
    "qmp_capabilities_again",
    "qmp_capabilities_unknown_capability",
    "exec_oob_without_oob_negotiated",
];

/// Requests refused while their arguments are checked, before any command runs.
const VALIDATION: &[&str] = &[
    "device_add_without_driver",
    "device_add_driver_not_string",
    "device_del_id_missing",
    "device_del_id_missing_no_arguments",
    "device_del_id_not_string",
    "hmp_command_line_missing",
    "hmp_command_line_not_string",
];

/// The protocol-error section: from this step up to (not including) [`PROTOCOL_END`].
const PROTOCOL_FIRST: &str = "malformed_json_then_valid";
const PROTOCOL_END: &str = "second_client_same_socket";

/// Steps whose recorded string is a JSON string the walk sent as a value (its `json.dumps`
/// text): the walk records such a value and raw text alike, as a string.
const SENT_AS_JSON_STRING: &[&str] = &["json_string"];

/// The walk's limits (`ABBREVIATE`, `MAX_KEEP` in `tests/qmp/qmp_walk.py`).
const ABBREVIATE: usize = 4096;
const MAX_KEEP: usize = 50;

/// One step of the capture, each member kept as its exact text.
struct Step {
    name: String,
    members: BTreeMap<String, Box<RawValue>>,
}

impl Step {
    fn member(&self, key: &str) -> Option<Value> {
        let raw = self.members.get(key)?;
        Some(serde_json::from_str(raw.get()).unwrap_or_else(|e| panic!("{}.{key}: {e}", self.name)))
    }

    fn count(&self, key: &str) -> Option<usize> {
        self.member(key)
            .and_then(|v| v.as_u64())
            .and_then(|n| usize::try_from(n).ok())
    }

    /// The bytes the walk sent. `null` is the JSON text `null`: every step replayed here sent
    /// something (only the greeting and the second-client steps send nothing).
    fn input(&self) -> Vec<u8> {
        let sent = self
            .members
            .get("sent")
            .unwrap_or_else(|| panic!("{}: no sent", self.name));
        let raw_text = sent.get().starts_with('"') && !SENT_AS_JSON_STRING.contains(&&*self.name);
        let bytes = if raw_text {
            let text = self.member("sent").and_then(|v| v.as_str().map(String::from));
            from_backslashreplace(&expand(&text.unwrap_or_default()))
        } else {
            format!("{}\n", expand(sent.get())).into_bytes()
        };
        if let Some(n) = self.count("sent_bytes") {
            assert_eq!(bytes.len(), n, "{}: rebuilt input length", self.name);
        }
        bytes
    }
}

fn load() -> Vec<Step> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CAPTURE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let members: BTreeMap<String, Box<RawValue>> =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let name = members
                .get("step")
                .and_then(|s| serde_json::from_str::<String>(s.get()).ok())
                .unwrap_or_else(|| panic!("a step without a name: {line}"));
            Step { name, members }
        })
        .collect()
}

/// Rebuilds every `<abbreviated N chars: HEAD...TAIL>` in `text`: N characters, HEAD, then
/// HEAD's last character repeated, then TAIL.
fn expand(text: &str) -> String {
    const OPEN: &str = "<abbreviated ";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let marker = &rest[at + OPEN.len()..];
        let (count, body) = marker.split_once(" chars: ").expect("a marker's length");
        let n: usize = count.parse().expect("a marker's length");
        let head: String = body.chars().take(40).collect();
        let body = &body[head.len()..];
        let body = body.strip_prefix("...").expect("a marker's '...'");
        let tail_len: usize = body.chars().take(40).map(char::len_utf8).sum();
        let (tail, after) = body.split_at(tail_len);
        let after = after.strip_prefix('>').expect("a marker's end");
        let fill = head.chars().last().expect("a marker's head");
        let fill_count = n - head.chars().count() - tail.chars().count();
        out.push_str(&head);
        out.extend(std::iter::repeat_n(fill, fill_count));
        out.push_str(tail);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Undoes Python's `backslashreplace`: `\xNN` (two lowercase hex digits) is the byte NN.
fn from_backslashreplace(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .filter(|h| h.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)));
        match (bytes[i], bytes.get(i + 1), hex) {
            (b'\\', Some(b'x'), Some(h)) => {
                let h = std::str::from_utf8(h).expect("hex digits");
                out.push(u8::from_str_radix(h, 16).expect("hex digits"));
                i += 4;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A line as the walk records it: abbreviated when longer than 4096 characters.
fn abbreviate(line: &str) -> String {
    let n = line.chars().count();
    if n <= ABBREVIATE {
        return line.to_string();
    }
    let head: String = line.chars().take(40).collect();
    let tail: String = line.chars().skip(n - 40).collect();
    format!("<abbreviated {n} chars: {head}...{tail}>")
}

/// Feeds `step`'s bytes to `session` and compares what it writes with QEMU's lines.
fn replay(session: &mut Session, step: &Step) {
    let name = &step.name;
    let ours = session.feed_collect(&step.input());
    let expect: Vec<String> = match step.member("raw") {
        Some(Value::Array(lines)) => lines.iter().filter_map(|l| l.as_str().map(String::from)).collect(),
        other => panic!("step {name}: raw is {other:?}"),
    };
    let count = step.count("received_count").unwrap_or(expect.len());
    assert_eq!(ours.len(), count, "step {name}: number of lines: {ours:?}");
    let ours: Vec<String> = ours.iter().take(MAX_KEEP).map(|l| abbreviate(l)).collect();
    assert_eq!(ours, expect, "step {name}");
    assert_eq!(step.member("closed"), None, "step {name}: QEMU closed the connection");
}

fn find<'a>(steps: &'a [Step], name: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("step {name} is not in the capture"))
}

#[test]
fn negotiation_matches_qemu_byte_for_byte() {
    let steps = load();
    let mut session = Session::new(Fake::new(Events::new()));
    for name in NEGOTIATION {
        replay(&mut session, find(&steps, name));
    }
}

#[test]
fn protocol_steps_match_qemu_byte_for_byte() {
    let steps = load();
    let mut session = Session::new(Fake::new(Events::new()));
    let negotiated = session.feed_collect(br#"{"execute": "qmp_capabilities"}"#);
    assert_eq!(negotiated, vec!["{\"return\": {}}\r\n".to_string()]);
    for name in VALIDATION {
        replay(&mut session, find(&steps, name));
    }
    let first = steps
        .iter()
        .position(|s| s.name == PROTOCOL_FIRST)
        .expect(PROTOCOL_FIRST);
    let end = steps.iter().position(|s| s.name == PROTOCOL_END).expect(PROTOCOL_END);
    assert!(first < end, "{PROTOCOL_FIRST} after {PROTOCOL_END}");
    for step in &steps[first..end] {
        replay(&mut session, step);
    }
    let replayed = VALIDATION.len() + (end - first);
    assert!(replayed >= 117, "only {replayed} protocol steps");
}

#[test]
fn rebuilding_inputs_undoes_the_walks_recording() {
    let marker =
        "<abbreviated 100 chars: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n>";
    let line = format!("{}\n", "a".repeat(99));
    assert_eq!(expand(&format!("x{marker}y")), format!("x{line}y"));
    assert_eq!(
        abbreviate(&"b".repeat(5000)).len(),
        "<abbreviated 5000 chars: ...>".len() + 80
    );
    assert_eq!(
        from_backslashreplace(r#"\xff\n"\x"\x4"#),
        b"\xff\\n\"\\x\"\\x4".to_vec()
    );
}
