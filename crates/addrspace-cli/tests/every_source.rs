//! The map-reading commands on every shipped board and every QEMU capture: `lookup` answers
//! at each flat range's first and last address with the region `info mtree -f` prints there
//! (by name and by its `mtree --json` id),
//! `diff` of a source against itself is empty (exit 0), and `map` draws both pictures.

mod common;

use common::*;
use serde_json::Value;

/// Every board file and every capture's `mtree-D.txt` (with its hints file when it has one),
/// as the arguments that name the source.
fn sources() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut boards: Vec<_> = std::fs::read_dir(repo().join("boards"))
        .expect("boards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    boards.sort();
    out.extend(boards.iter().map(|p| vec![p.display().to_string()]));
    let mut machines: Vec<_> = std::fs::read_dir(repo().join("tests/fixtures/qemu"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    machines.sort();
    for m in machines {
        let mut args = vec![m.join("mtree-D.txt").display().to_string()];
        let hints = m.join("hints.toml");
        if hints.exists() {
            args.extend(["--hints".to_string(), hints.display().to_string()]);
        }
        out.push(args);
    }
    assert!(out.len() >= 10, "boards and captures found: {out:?}");
    out
}

/// Runs `addrspace CMD SOURCE... REST...`, failing with its stderr if it fails.
fn ok(cmd: &str, source: &[String], rest: &[&str]) -> String {
    let mut args = vec![cmd, source[0].as_str()];
    args.extend(rest);
    args.extend(source[1..].iter().map(String::as_str));
    run_ok(&args)
}

/// `run_ok` on owned arguments.
fn ok_args(args: &[String]) -> String {
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn lookup_answers_with_the_flat_views_region_at_every_range_edge() {
    for src in sources() {
        let mut args = vec!["mtree".to_string(), "-f".to_string(), "--json".to_string()];
        let mut source = src.clone();
        // `mtree` takes a dump through --from-qemu.
        if source[0].ends_with(".txt") {
            source.insert(0, "--from-qemu".to_string());
        }
        args.extend(source);
        let flat: Value = serde_json::from_str(&ok_args(&args)).expect("mtree -f --json is JSON");
        let views = flat["flat_views"].as_array().expect("flat_views");
        let mut checked = 0;
        for view in views {
            let space = view["address_spaces"][0].as_str().expect("a space name");
            for r in view["ranges"].as_array().expect("ranges").iter().take(40) {
                for key in ["start", "last"] {
                    let at = r[key].as_str().expect("hex address");
                    let out = ok("lookup", &src, &[at, "--space", space, "--json"]);
                    let v: Value = serde_json::from_str(&out).expect("lookup --json is JSON");
                    let answer = &v.as_array().expect("answers")[0];
                    assert_eq!(
                        answer["range"]["region"]["name"], r["name"],
                        "{src:?}: lookup {at} in {space}: {answer}"
                    );
                    // The same region by id: lookup's answers join with mtree --json's tree.
                    assert_eq!(
                        answer["range"]["region"]["mtree_id"], r["region"],
                        "{src:?}: lookup {at} in {space}: {answer}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "{src:?}: no range looked up");
    }
}

#[test]
fn a_source_diffed_against_itself_is_the_same() {
    for src in sources() {
        let mut args = vec!["diff", src[0].as_str(), src[0].as_str()];
        args.extend(src[1..].iter().map(String::as_str));
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{src:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.is_empty(),
            "{src:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn map_draws_every_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (k, src) in sources().iter().enumerate() {
        let svg = dir.path().join(format!("{k}.svg"));
        let html = dir.path().join(format!("{k}.html"));
        let (svg_s, html_s) = (svg.display().to_string(), html.display().to_string());
        let mut args = vec!["map", src[0].as_str(), "--svg", &svg_s, "--html", &html_s];
        args.extend(src[1..].iter().map(String::as_str));
        let out = run(&args);
        assert!(
            out.status.success(),
            "{src:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in [&svg, &html] {
            let len = std::fs::metadata(f).expect("written").len();
            assert!(len > 1000, "{src:?}: {} is {len} bytes", f.display());
        }
    }
}
