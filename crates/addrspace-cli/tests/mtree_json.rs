//! `addrspace mtree --json` is data (schema `addrspace-mtree/2`, docs/json-schema.md): for
//! every QEMU capture and every board file, the document parses, ids are unique, aliases
//! point at ids that exist, children fit their containers, and the flat views written back
//! as text are QEMU's own `info mtree -f` capture (for the captures) or our `-f` (boards).

mod common;

use std::collections::{HashMap, HashSet};

use addrspace::mtree::canonical;
use common::*;
use serde_json::Value;

/// Every capture directory (a new capture is tested without editing this file).
fn captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("tests/fixtures/qemu"))
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every board file.
fn boards() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("boards"))
        .expect("boards")
        .map(|e| format!("boards/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".toml"))
        .collect();
    v.sort();
    v
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn hex(v: &Value) -> u128 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"));
    let digits = s.strip_prefix("0x").unwrap_or_else(|| panic!("no 0x: {s}"));
    u128::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in {v}"))
}

/// Every region of the document by id, checking on the way that ids are unique and that
/// every child fits in its container.
fn index<'a>(doc: &'a Value, what: &str) -> HashMap<u64, &'a Value> {
    let mut by_id: HashMap<u64, &Value> = HashMap::new();
    let mut stack: Vec<&Value> = arr(doc, "regions").iter().collect();
    while let Some(r) = stack.pop() {
        let id = r["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: region without id: {r}"));
        assert!(by_id.insert(id, r).is_none(), "{what}: id {id} twice");
        assert!(
            r["name"].is_string() && r["kind"].is_string() && r["type"].is_string(),
            "{r}"
        );
        assert!(r["enabled"].is_boolean() && r["readonly"].is_boolean(), "{r}");
        let size = hex(&r["size"]);
        assert!(size <= 1u128 << 64, "{what}: {r}");
        if let Some(kids) = r.get("children") {
            for c in kids.as_array().expect("children is an array") {
                let end = hex(&c["addr"]) + hex(&c["size"]);
                assert!(
                    end <= size,
                    "{what}: child {} (id {}) ends at {end:#x}, outside {} (size {size:#x})",
                    c["name"],
                    c["id"],
                    r["name"]
                );
                stack.push(c);
            }
        }
    }
    by_id
}

/// Checks the document's structure; returns its regions by id.
fn check_structure<'a>(doc: &'a Value, what: &str) -> HashMap<u64, &'a Value> {
    assert_eq!(doc["format"], "addrspace-mtree/2", "{what}");
    let by_id = index(doc, what);
    for r in by_id.values() {
        match r.get("target") {
            Some(t) => {
                let t = t.as_u64().expect("target is an id");
                assert_eq!(r["kind"], "alias", "{what}: {r}");
                assert!(
                    by_id.contains_key(&t),
                    "{what}: alias {} targets missing id {t}",
                    r["name"]
                );
                hex(&r["offset"]);
            }
            None => assert_ne!(r["kind"], "alias", "{what}: alias without target: {r}"),
        }
    }
    for sp in arr(doc, "address_spaces") {
        let root = sp["root"].as_u64().expect("root id");
        assert!(
            by_id.contains_key(&root),
            "{what}: space {} has root {root}",
            sp["name"]
        );
    }
    for v in arr(doc, "flat_views") {
        if let Some(root) = v["root"].as_u64() {
            assert!(by_id.contains_key(&root), "{what}: view root {root}");
        }
    }
    by_id
}

/// The flat views written back as `info mtree -f` text, from the document alone.
fn flat_text(doc: &Value, by_id: &HashMap<u64, &Value>) -> String {
    let region = |id: &Value| by_id[&id.as_u64().expect("id")];
    let roots: HashMap<&str, u64> = arr(doc, "address_spaces")
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["root"].as_u64().unwrap()))
        .collect();
    let mut s = String::new();
    for (i, v) in arr(doc, "flat_views").iter().enumerate() {
        s += &format!("FlatView #{i}\n");
        for name in arr(v, "address_spaces") {
            let name = name.as_str().unwrap();
            let root = by_id[&roots[name]];
            s += &format!(" AS \"{name}\", root: {}", root["name"].as_str().unwrap());
            if let Some(t) = root.get("target") {
                s += &format!(", alias {}", region(t)["name"].as_str().unwrap());
            }
            s += "\n";
        }
        let root = match v["root"].as_u64() {
            Some(r) => by_id[&r]["name"].as_str().unwrap(),
            None => "(none)",
        };
        s += &format!(" Root memory region: {root}\n");
        let ranges = arr(v, "ranges");
        if ranges.is_empty() {
            s += "  No rendered FlatView\n";
        }
        for r in ranges {
            let reg = region(&r["region"]);
            assert_eq!(r["name"], reg["name"], "{r}");
            let nv = if r["nonvolatile"].as_bool().unwrap() { "nv-" } else { "" };
            s += &format!(
                "  {:016x}-{:016x} (prio {}, {nv}{}): {}",
                hex(&r["start"]),
                hex(&r["last"]),
                reg["priority"],
                r["type"].as_str().unwrap(),
                reg["name"].as_str().unwrap()
            );
            let offset = hex(&r["offset"]);
            if offset != 0 {
                s += &format!(" @{offset:016x}");
            }
            s += "\n";
        }
        s += "\n";
    }
    s
}

#[test]
fn every_capture_as_data_gives_back_qemus_flat_views() {
    for machine in captures() {
        let doc = parse(&from_qemu(&machine, &["--json"]));
        let by_id = check_structure(&doc, &machine);
        assert_eq!(
            canonical(&flat_text(&doc, &by_id)),
            canonical(&read(&fixture(&machine, "mtree-f.txt"))),
            "{machine}: the JSON's flat views are not QEMU's `info mtree -f`"
        );
    }
}

#[test]
fn every_board_as_data_gives_back_its_flat_views() {
    for board in boards() {
        let doc = parse(&run_ok(&["mtree", &board, "--json"]));
        let by_id = check_structure(&doc, &board);
        assert_eq!(
            flat_text(&doc, &by_id),
            run_ok(&["mtree", &board, "-f"]),
            "{board}: JSON and `-f` differ"
        );
    }
}

#[test]
fn ids_tell_equal_names_apart_and_owners_come_along() {
    let doc = parse(&run_ok(&[
        "mtree",
        "--from-qemu",
        &fixture("arm-virt-a57-smp2-1G", "mtree-o-D.txt"),
        "--hints",
        &fixture("arm-virt-a57-smp2-1G", "hints.toml"),
        "--json",
    ]));
    let by_id = check_structure(&doc, "arm virt -o");
    let mmio: Vec<&&Value> = by_id.values().filter(|r| r["name"] == "virtio-mmio").collect();
    assert_eq!(mmio.len(), 32, "32 virtio-mmio regions");
    let ranged: HashSet<u64> = arr(&doc, "flat_views")
        .iter()
        .flat_map(|v| arr(v, "ranges"))
        .filter(|r| r["name"] == "virtio-mmio")
        .map(|r| r["region"].as_u64().unwrap())
        .collect();
    assert_eq!(ranged.len(), 32, "each virtio-mmio range names its own region");
    // The owner text of the dump, e.g. `owner:{dev path=/machine/virt/virtio-mmio[0]}`.
    assert!(
        mmio.iter()
            .all(|r| r["owner"].as_str().is_some_and(|o| o.starts_with("owner:{dev "))),
        "{mmio:?}"
    );
    // A `-D` dump without `-o` has no owners.
    let plain = parse(&from_qemu("arm-virt-a57-smp2-1G", &["--json"]));
    assert!(index(&plain, "arm virt").values().all(|r| r["owner"].is_null()));
}

#[test]
fn disabled_regions_are_data_too() {
    // `-D` changes nothing: disabled regions are always there, marked.
    let doc = from_qemu("x86-pc-512M", &["--json"]);
    assert_eq!(doc, from_qemu("x86-pc-512M", &["-D", "--json"]));
    let doc = parse(&doc);
    let by_id = index(&doc, "pc");
    let smram = by_id
        .values()
        .find(|r| r["name"] == "smram" && r["kind"] == "container")
        .expect("the smram container");
    assert_eq!(smram["enabled"], false, "{smram}");
    // `-d` adds each view's lookup index.
    let with_index = parse(&from_qemu("x86-pc-512M", &["-d", "--json"]));
    let ranged = |v: &&Value| !arr(v, "ranges").is_empty();
    assert!(arr(&with_index, "flat_views")
        .iter()
        .filter(ranged)
        .all(|v| v.get("index").is_some()));
    assert!(arr(&doc, "flat_views").iter().all(|v| v.get("index").is_none()));
}

/// The fenced block of `lang` number `n` (0-based) in a Markdown text.
fn fenced<'a>(md: &'a str, lang: &str, n: usize) -> &'a str {
    let open = format!("```{lang}\n");
    let start = md
        .match_indices(&open)
        .nth(n)
        .unwrap_or_else(|| panic!("no ```{lang} #{n}"))
        .0
        + open.len();
    let len = md[start..].find("```").expect("closed");
    &md[start..start + len]
}

#[test]
fn the_schema_documents_example_is_what_the_tool_prints() {
    let md = read("docs/json-schema.md");
    let board = tempfile_with(fenced(&md, "toml", 0));
    let board = board.path().to_str().unwrap();
    assert_eq!(run_ok(&["mtree", board, "--json"]), fenced(&md, "json", 0));
    let console = fenced(&md, "console", 0);
    let printed = console.split_once('\n').expect("command line").1;
    assert_eq!(run_ok(&["mtree", board, "-o"]).trim_end(), printed.trim_end());
}
