//! The QMP wire protocol over real sockets: greeting, negotiation, request checking, ids,
//! malformed input and its recovery, very long lines.

mod support;

use addrspace_monitor::{qjson, ChardevSpec, Events, Monitor};
use serde_json::{json, Value};
use support::{generic, serve_unix, Client, Fake, Served};

fn setup() -> Served {
    serve_unix("server=on,wait=off")
}

#[test]
fn greeting_is_qemus_with_our_version_and_no_capabilities() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    let line = c.line();
    let greeting: Value = serde_json::from_str(&line).expect("json");
    let version = json!({
        "qemu": {"major": 10, "minor": 0, "micro": 2},
        "package": format!("addrspace {}", env!("CARGO_PKG_VERSION")),
    });
    assert_eq!(greeting, json!({"QMP": {"version": version, "capabilities": []}}));
    // QEMU's formatting, QEMU's member order (micro before minor before major: "minor" and
    // "micro" share a hash bucket, the later insertion first).
    assert!(line.starts_with(r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}"#));
    s.monitor.shutdown();
}

#[test]
fn negotiation_mode_allows_only_qmp_capabilities() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    c.json();
    for name in ["query-status", "query-version", "no-such-command"] {
        let reply = c.cmd(name, Value::Null);
        assert_eq!(
            Client::error(&reply),
            (
                "CommandNotFound".into(),
                "Expecting capabilities negotiation with 'qmp_capabilities'".into()
            )
        );
    }
    // The backend saw none of them.
    assert!(s.fake.lock().log.is_empty());
    let reply = c.cmd("qmp_capabilities", json!({"enable": ["oob"]}));
    assert_eq!(Client::error(&reply), generic("Capability oob not available"));
    let reply = c.cmd("qmp_capabilities", json!({"enable": ["bogus"]}));
    assert_eq!(
        Client::error(&reply),
        generic("Parameter 'null' does not accept value 'bogus'")
    );
    assert_eq!(c.cmd("qmp_capabilities", json!({})), json!({"return": {}}));
    let reply = c.cmd("qmp_capabilities", Value::Null);
    assert_eq!(
        Client::error(&reply),
        (
            "CommandNotFound".into(),
            "Capabilities negotiation is already complete, command ignored".into()
        )
    );
    assert_eq!(
        c.cmd("query-status", Value::Null),
        json!({"return": {"status": "running", "running": true}})
    );
    s.monitor.shutdown();
}

#[test]
fn request_shape_errors_echo_the_id() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    c.negotiate();
    let cases: [(&str, &str); 6] = [
        (r#"{"id": 7}"#, "QMP input lacks member 'execute'"),
        (
            r#"{"execute": 1, "id": 7}"#,
            "QMP input member 'execute' must be a string",
        ),
        (
            r#"{"execute": "stop", "arguments": [], "id": 7}"#,
            "QMP input member 'arguments' must be an object",
        ),
        (
            r#"{"execute": "stop", "foo": 1, "id": 7}"#,
            "QMP input member 'foo' is unexpected",
        ),
        (
            r#"{"exec-oob": "stop", "id": 7}"#,
            "QMP input member 'exec-oob' is unexpected",
        ),
        (
            r#"{"execute": "stop", "control": {}, "id": 7}"#,
            "QMP input member 'control' is unexpected",
        ),
    ];
    for (request, desc) in cases {
        c.send(request.as_bytes());
        let reply = c.reply();
        assert_eq!(Client::error(&reply), generic(desc), "{request}");
        assert_eq!(reply["id"], json!(7), "{request}");
    }
    // Nothing reached the backend.
    assert!(s.fake.lock().log.is_empty());
    s.monitor.shutdown();
}

#[test]
fn ids_of_any_type_come_back_and_replies_keep_qemus_layout() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    c.negotiate();
    for id in [
        json!("abc"),
        json!(-3),
        json!(1.5),
        json!(null),
        json!([1, {"b": 2, "a": true}]),
        json!({"x": "é"}),
    ] {
        let request = json!({"execute": "query-status", "id": id});
        c.send(request.to_string().as_bytes());
        let line = c.reply_line();
        let reply: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(reply["id"], id);
        assert_eq!(line, qjson::to_string(&reply));
    }
    // A reply without id when the request had none; error replies print id first.
    c.send(br#"{"execute": "query-status"}"#);
    assert!(c.reply().get("id").is_none());
    c.send(br#"{"execute": "nope", "id": "q"}"#);
    assert_eq!(
        c.reply_line(),
        r#"{"id": "q", "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#
    );
    s.monitor.shutdown();
}

#[test]
fn several_requests_per_write_and_one_request_over_many_writes() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    c.negotiate();
    c.send(br#"{"execute":"query-status","id":1}{"execute":"query-version","id":2}"#);
    assert_eq!(c.reply()["id"], json!(1));
    assert_eq!(c.reply()["id"], json!(2));
    for chunk in [&b"{\"exec"[..], b"ute\": \"query-", b"status\", \"id\"", b": 3}"] {
        c.send(chunk);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(c.reply()["id"], json!(3));
    s.monitor.shutdown();
}

#[test]
fn malformed_json_and_non_objects_get_errors_and_the_session_goes_on() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    c.negotiate();
    c.send(b"{\"execute\": }\n");
    assert_eq!(Client::error(&c.reply()), generic("JSON parse error, expecting value"));
    c.send(b"nonsense\n");
    assert_eq!(
        Client::error(&c.reply()),
        generic("JSON parse error, invalid keyword 'nonsense'")
    );
    c.send(b"@#$ garbage {\"junk\"\n");
    assert_eq!(Client::error(&c.reply()), generic("JSON parse error, stray '@'"));
    // The `{` was a resynchronization point: that object is still open. Close it.
    c.send(b"}\n");
    assert_eq!(
        Client::error(&c.reply()),
        generic("JSON parse error, missing : in object pair")
    );
    for text in ["[1, 2]", "\"str\"", "42", "true"] {
        c.send(format!("{text}\n").as_bytes());
        let reply = c.reply();
        assert_eq!(
            Client::error(&reply),
            generic("QMP input must be a JSON object"),
            "{text}"
        );
        assert!(reply.get("id").is_none());
    }
    c.send(b"\xff");
    assert_eq!(Client::error(&c.reply()), generic("JSON parse error, stray '\u{FFFD}'"));
    assert_eq!(c.cmd("query-status", Value::Null)["return"]["running"], json!(true));
    s.monitor.shutdown();
}

#[test]
fn megabyte_lines_valid_and_junk_are_answered() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    c.negotiate();
    let big_id = "i".repeat(1 << 20);
    let request = json!({"execute": "query-status", "id": big_id});
    c.send(format!("{request}\n").as_bytes());
    let reply = c.reply();
    assert_eq!(reply["id"], json!(big_id));
    assert_eq!(reply["return"]["status"], json!("running"));
    // A megabyte of letters is one (invalid) keyword: one error, its message cut after
    // 1023 bytes (closing quote included) as QEMU 10.0.2 cuts it.
    let junk = "z".repeat(1 << 20);
    c.send(format!("{junk}\n").as_bytes());
    let kept = &junk[..1023 - "invalid keyword '".len()];
    assert_eq!(
        Client::error(&c.reply()),
        generic(&format!("JSON parse error, invalid keyword '{kept}"))
    );
    // A megabyte of stray bytes is one error too: the lexer skips to the newline.
    let stray = "#".repeat(1 << 20);
    c.send(format!("{stray}\n").as_bytes());
    assert_eq!(Client::error(&c.reply()), generic("JSON parse error, stray '#'"));
    assert_eq!(
        c.cmd("query-version", Value::Null)["return"]["qemu"]["major"],
        json!(10)
    );
    s.monitor.shutdown();
}

#[test]
fn nesting_limit_is_qemus() {
    let s = setup();
    let mut c = Client::unix(&s.path);
    c.negotiate();
    let deep = format!("{}{}\n", "[".repeat(1025), "]".repeat(1025));
    c.send(deep.as_bytes());
    assert_eq!(Client::error(&c.reply()), generic("JSON nesting depth limit exceeded"));
    // Each unmatched `]` that follows is an error of its own, as in QEMU.
    for _ in 0..1025 {
        assert_eq!(Client::error(&c.reply()), generic("JSON parse error, expecting value"));
    }
    assert!(c.cmd("query-status", Value::Null).get("return").is_some());
    s.monitor.shutdown();
}

#[test]
fn tcp_works_the_same_and_port_zero_reports_the_real_port() {
    let events = Events::new();
    let fake = Fake::new(events.clone());
    let mut monitor = Monitor::new(fake, events);
    let spec = ChardevSpec::parse("tcp:127.0.0.1:0,server=on,wait=off").expect("spec");
    let addr = monitor.listen(&spec).expect("listen");
    assert!(addr.starts_with("127.0.0.1:"));
    assert!(!addr.ends_with(":0"));
    let mut c = Client::tcp(&addr);
    c.negotiate();
    assert_eq!(
        c.cmd("query-status", Value::Null),
        json!({"return": {"status": "running", "running": true}})
    );
    monitor.shutdown();
}
