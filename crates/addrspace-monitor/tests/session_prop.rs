//! Property: no byte string makes a session panic, the way bytes are split into reads does
//! not change what it answers, and QEMU's resynchronization (an `0xFF` byte, which cannot
//! occur in JSON text) followed by a newline always leaves it ready for the next command.

mod support;

use addrspace_monitor::{Events, Session};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::Fake;

fn session() -> Session {
    let mut s = Session::new(Fake::new(Events::new()));
    s.feed_collect(br#"{"execute": "qmp_capabilities"}"#);
    s
}

/// Bytes biased towards JSON's structural characters, so values open and close often.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => prop::sample::select(b"{}[]:,\"'\\ \n0123456789-.eEtrufalsn".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_then_resync_leaves_the_session_usable(bytes in jsonish(), cut in 0usize..400) {
        let mut whole = session();
        let mut out = whole.feed_collect(&bytes);
        let mut split = session();
        let cut = cut.min(bytes.len());
        let mut split_out = split.feed_collect(&bytes[..cut]);
        split_out.extend(split.feed_collect(&bytes[cut..]));
        prop_assert_eq!(&out, &split_out);
        out.extend(whole.feed_collect(b"\xff\n{\"execute\": \"query-status\", \"id\": \"probe\"}"));
        for line in &out {
            prop_assert!(line.ends_with("\r\n"));
            let v: Result<Value, _> = serde_json::from_str(line);
            prop_assert!(v.is_ok(), "not JSON: {:?}", line);
        }
        let last: Value = serde_json::from_str(out.last().map(String::as_str).unwrap_or("null"))
            .unwrap_or(Value::Null);
        prop_assert_eq!(&last["id"], &json!("probe"));
        prop_assert!(last.get("return").is_some(), "{}", last);
    }
}
