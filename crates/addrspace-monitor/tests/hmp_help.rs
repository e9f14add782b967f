//! HMP's help against QEMU 10.0.2's: `help`, `?`, `help CMD`, `help info` and a bare `info`
//! (through QMP's `human-monitor-command`, CRLF line ends included) print, for each command
//! we implement, exactly QEMU's line for it, in QEMU's order. QEMU's texts are the captures
//! `tests/fixtures/qmp/hmp-help.txt` and `hmp-help-info.txt` (see that directory's README).

mod support;

use std::path::Path;

use addrspace_monitor::{Events, Session};
use serde_json::{json, Value};
use support::Fake;

fn capture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/qmp")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// QEMU's help entries: one per command, continuation lines (tab-indented, or the
/// `drive_add` option lines) kept with their command. Each ends in "\r\n".
fn entries(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split_inclusive("\r\n") {
        let starts_entry = line.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        match out.last_mut() {
            Some(last) if !starts_entry => last.push_str(line),
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// The command an entry documents (`stop|s`, `info mtree`; `info` for `info [subcommand]`).
fn name(entry: &str) -> &str {
    let words: Vec<&str> = entry.splitn(3, ' ').collect();
    match words.as_slice() {
        ["info", sub, ..] if !sub.starts_with('[') => &entry[..5 + sub.len()],
        [word, ..] => word,
        [] => "",
    }
}

/// What `human-monitor-command` returns for `line`.
fn hmp(session: &mut Session, line: &str) -> String {
    let request = json!({"execute": "human-monitor-command", "arguments": {"command-line": line}});
    let lines = session.feed_collect(request.to_string().as_bytes());
    assert_eq!(lines.len(), 1, "{line}: {lines:?}");
    let reply: Value = serde_json::from_str(&lines[0]).expect("a JSON reply");
    match reply["return"].as_str() {
        Some(text) => text.to_string(),
        None => panic!("{line}: {reply}"),
    }
}

fn session() -> Session {
    let mut s = Session::new(Fake::new(Events::new()));
    s.feed_collect(br#"{"execute": "qmp_capabilities"}"#);
    s
}

/// Every entry of `ours` is QEMU's entry for the same command, and they come in QEMU's order.
fn assert_subset_in_order(ours: &str, qemu: &str, what: &str) {
    let qemu = entries(qemu);
    let ours = entries(ours);
    assert!(!ours.is_empty(), "{what}: empty");
    let mut at = 0;
    for entry in &ours {
        let Some(i) = qemu.iter().position(|q| name(q) == name(entry)) else {
            panic!("{what}: QEMU has no command {:?}", name(entry));
        };
        assert_eq!(entry, &qemu[i], "{what}: the line for {}", name(entry));
        assert!(i >= at, "{what}: {} is out of QEMU's order", name(entry));
        at = i;
    }
}

#[test]
fn help_lists_our_commands_with_qemus_lines() {
    let qemu = capture("hmp-help.txt");
    let mut s = session();
    let help = hmp(&mut s, "help");
    assert_subset_in_order(&help, &qemu, "help");
    assert_eq!(hmp(&mut s, "?"), help);
    // `help CMD` (by name or alias) prints that command's entry alone; `help info` prints
    // the `info` table instead, as QEMU does (the other test).
    for entry in entries(&help) {
        let command = name(&entry);
        for alias in command.split('|').filter(|a| *a != "info") {
            assert_eq!(hmp(&mut s, &format!("help {alias}")), entry, "help {alias}");
        }
        assert!(
            !hmp(&mut s, command.split('|').next().unwrap_or(command)).starts_with("unknown command"),
            "{command} is listed but not implemented"
        );
    }
    assert_eq!(hmp(&mut s, "help nosuch"), "unknown command: 'nosuch'\r\n");
}

#[test]
fn help_info_and_bare_info_list_our_subcommands_with_qemus_lines() {
    let qemu = capture("hmp-help-info.txt");
    let mut s = session();
    let info = hmp(&mut s, "help info");
    assert_subset_in_order(&info, &qemu, "help info");
    assert_eq!(hmp(&mut s, "info"), info);
    assert_eq!(hmp(&mut s, "? info"), info);
    for entry in entries(&info) {
        assert_eq!(hmp(&mut s, &format!("help {}", name(&entry))), entry);
    }
    let subcommands: Vec<String> = entries(&info).iter().map(|e| name(e).to_string()).collect();
    for wanted in [
        "info cpus",
        "info hotpluggable-cpus",
        "info mtree",
        "info status",
        "info version",
    ] {
        assert!(
            subcommands.iter().any(|s| s == wanted),
            "{wanted} missing from {subcommands:?}"
        );
    }
    assert_eq!(hmp(&mut s, "help info nope"), "unknown command: 'info nope'\r\n");
}

#[test]
fn entries_keep_continuation_lines_with_their_command() {
    let text = "a x -- one\r\n\t\t more\r\n[,opt]\r\nb  -- two\r\n";
    assert_eq!(
        entries(text),
        vec!["a x -- one\r\n\t\t more\r\n[,opt]\r\n", "b  -- two\r\n"]
    );
    assert_eq!(name("info mtree [-f] -- x\r\n"), "info mtree");
    assert_eq!(name("stop|s  -- stop emulation\r\n"), "stop|s");
    assert_eq!(name("info [subcommand] -- show\r\n"), "info");
}
