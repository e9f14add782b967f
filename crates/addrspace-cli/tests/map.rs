//! `addrspace map`: the SVG is well-formed XML for every board and every QEMU fixture, keeps
//! a 4 KiB range visible next to 4 GiB, escapes names and is stable (a reviewed golden file);
//! the HTML page is self-contained and works in a real headless Chromium driven by selenium
//! (`tests/map/map_page.py`): not blank, hover shows the lookup answer, zoom changes the span.
//!
//! The browser test skips, saying why, when chromium, chromedriver or selenium are missing,
//! unless ADDRSPACE_REQUIRE_BROWSER is set (`.ci/run` sets it and installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::repo;

/// Runs `addrspace map ARGS` in the repo; panics with its stderr on failure.
fn map(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_addrspace"))
        .arg("map")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run addrspace");
    assert!(
        out.status.success(),
        "addrspace map {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The SVG of `source` (a path relative to the repo, or absolute).
fn svg_of(source: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("map.svg");
    map(&[source.to_str().unwrap(), "--svg", out.to_str().unwrap()]);
    std::fs::read_to_string(out).unwrap()
}

/// Every board file and every fixture's `info mtree -D` dump.
fn sources() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(repo().join("boards")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            v.push(p);
        }
    }
    for e in std::fs::read_dir(repo().join("tests/fixtures/qemu")).unwrap() {
        let p = e.unwrap().path().join("mtree-D.txt");
        if p.exists() {
            v.push(p);
        }
    }
    v.sort();
    assert!(v.len() >= 10, "boards and fixtures: {v:?}");
    v
}

/// The `<g>` boxes of a parsed SVG: (title, y, height) of each range or hole.
fn boxes(doc: &roxmltree::Document<'_>) -> Vec<(String, f64, f64)> {
    doc.descendants()
        .filter(|n| n.has_tag_name("g"))
        .filter_map(|g| {
            let title = g.children().find(|c| c.has_tag_name("title"))?.text()?.to_string();
            let rect = g.children().find(|c| c.has_tag_name("rect"))?;
            let num = |a: &str| rect.attribute(a).unwrap().parse::<f64>().unwrap();
            Some((title, num("y"), num("height")))
        })
        .collect()
}

#[test]
fn the_svg_is_well_formed_for_every_board_and_fixture() {
    for src in sources() {
        let svg = svg_of(&src);
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{}: the SVG is not well-formed: {e}", src.display()));
        assert!(doc.root_element().has_tag_name("svg"), "{}", src.display());
        // Every flat range of `mtree -f` is a box, and the boxes tile each column.
        let flat = Command::new(env!("CARGO_BIN_EXE_addrspace"))
            .args(["mtree", "-f", "--json"])
            .args(if src.extension().is_some_and(|x| x == "toml") {
                vec![src.to_str().unwrap()]
            } else {
                vec!["--from-qemu", src.to_str().unwrap()]
            })
            .output()
            .unwrap();
        let flat: serde_json::Value = serde_json::from_slice(&flat.stdout).unwrap();
        let ranges: usize = flat["flat_views"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["ranges"].as_array().unwrap().len())
            .sum();
        let b = boxes(&doc);
        let holes = b.iter().filter(|(t, ..)| t.starts_with("unassigned")).count();
        assert_eq!(b.len() - holes, ranges, "{}: one box per flat range", src.display());
        assert!(
            b.iter().all(|&(_, _, h)| h >= 14.0),
            "{}: a box under the minimum",
            src.display()
        );
    }
}

/// A board: `ram` (4 GiB at 0), `dev` (4 KiB MMIO right above it), and a region whose name
/// needs escaping.
const SMALL_AND_HUGE: &str = r#"
[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  { region = "ram", addr = 0 },
  { region = "dev", addr = "0x100000000" },
  { region = "odd", addr = "0x200000000" },
]

[[region]]
name = "ram"
type = "ram"
size = "4G"

[[region]]
name = "dev"
type = "io"
size = "4K"

[[region]]
name = "a<b & \"c\" 'd'"
id = "odd"
type = "io"
size = "16"

[[address-space]]
name = "memory"
root = "system"
"#;

#[test]
fn a_4k_range_next_to_4g_stays_visible_and_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let board = dir.path().join("board.toml");
    std::fs::write(&board, SMALL_AND_HUGE).unwrap();
    let svg = svg_of(&board);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed");
    let b = boxes(&doc);
    let find = |name: &str| {
        b.iter()
            .find(|(t, ..)| t.lines().next() == Some(name))
            .unwrap_or_else(|| panic!("no box for {name:?} in {b:?}"))
            .clone()
    };
    let (ram, dev) = (find("ram"), find("dev"));
    assert!(dev.2 >= 14.0, "the 4 KiB box is {} px high", dev.2);
    assert!(ram.2 > dev.2, "4 GiB ({}) not taller than 4 KiB ({})", ram.2, dev.2);
    // Adjacent on the axis: the device starts where RAM ends.
    assert!((ram.1 + ram.2 - dev.1).abs() < 0.01, "{ram:?} {dev:?}");
    // The odd name came through escaping intact (the parser unescaped it).
    find("a<b & \"c\" 'd'");
    assert!(
        doc.descendants().any(|n| n.text() == Some("a<b & \"c\" 'd' (16 B)")),
        "label"
    );
}

#[test]
fn the_svg_is_stable_golden_file() {
    // A reviewed picture of boards/zcu102.toml (RAM through an alias, MMIO, holes, six
    // spaces sharing one view). After an intended change, regenerate it with
    //   ADDRSPACE_UPDATE_GOLDEN=1 cargo test -p addrspace-cli --test map
    // and look at it (e.g. in a browser) before committing.
    let golden = repo().join("tests/golden/map-zcu102.svg");
    let svg = svg_of(Path::new("boards/zcu102.toml"));
    if std::env::var_os("ADDRSPACE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &svg).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("tests/golden/map-zcu102.svg");
    assert!(
        svg == want,
        "the SVG of boards/zcu102.toml differs from {}",
        golden.display()
    );
    // And the same input gives the same bytes on a large map too.
    let q35 = Path::new("tests/fixtures/qemu/x86-q35-1G/mtree-D.txt");
    assert!(svg_of(q35) == svg_of(q35), "two runs differ");
}

#[test]
fn map_needs_an_output_and_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_addrspace"))
        .args(["map", "boards/zcu102.toml"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--svg") && err.contains("--html"), "{err}");
}

#[test]
fn the_html_page_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("map.html");
    map(&["boards/pc.toml", "--html", out.to_str().unwrap()]);
    let html = std::fs::read_to_string(out).unwrap();
    // No fetched resource: no external script, style, font or image, no URL but the SVG
    // namespace the script creates elements in.
    for bad in ["<link", "src=", "@import", "url(http", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(bad), "the page contains {bad:?}");
    }
    let urls = html.matches("http").count();
    assert_eq!(
        urls,
        html.matches("http://www.w3.org/2000/svg").count(),
        "a URL in the page"
    );
    assert!(
        html.contains("id=\"map-data\"") && html.contains("\"pc.ram\""),
        "data embedded"
    );
}

/// Whether chromium, chromedriver and selenium are here; panics instead of skipping when
/// ADDRSPACE_REQUIRE_BROWSER is set.
fn have_browser() -> bool {
    let mut missing = Vec::new();
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(bin).exists() {
            missing.push(bin.to_string());
        }
    }
    let py = Command::new("python3").args(["-c", "import selenium, PIL"]).status();
    if !py.is_ok_and(|s| s.success()) {
        missing.push("python3 modules selenium and PIL".into());
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("ADDRSPACE_REQUIRE_BROWSER").is_none(),
        "ADDRSPACE_REQUIRE_BROWSER is set but these are missing: {}",
        missing.join(", ")
    );
    eprintln!(
        "skipped: {} missing (apt-get install chromium chromium-driver; pip install selenium; .ci/run does)",
        missing.join(", ")
    );
    false
}

#[test]
fn the_html_page_works_in_a_headless_browser() {
    if !have_browser() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("map.html");
    map(&["boards/pc.toml", "--html", html.to_str().unwrap()]);
    let png = dir.path().join("map.png");
    // `pc.ram` is the RAM region boards/pc.toml declares.
    let out = Command::new("python3")
        .arg(repo().join("tests/map/map_page.py"))
        .arg(&html)
        .arg("pc.ram")
        .arg(&png)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "map_page.py failed\n{stdout}\n{stderr}"
    );
}
