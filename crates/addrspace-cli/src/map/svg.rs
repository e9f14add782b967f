//! The map as one SVG picture: a legend, one column per flat view (the spaces sharing it
//! in its header), every range a box coloured by kind with its name and size, every hole
//! a grey box with its size, and the boundary addresses on the shared axis at the left.
//! Deterministic: integer geometry, output in address order.

use std::fmt::Write as _;

use super::layout::{hex16, px, size_text, Axis};
use super::model::{Kind, Map, Piece, Range};

/// Every kind, in legend order.
pub const KINDS: [Kind; 5] = [Kind::Ram, Kind::Rom, Kind::Romd, Kind::Ramd, Kind::Mmio];

/// The fill of a kind's boxes (the HTML page uses the same).
pub fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Ram => "#8fd694",
        Kind::Rom => "#7fb2f0",
        Kind::Romd => "#b59ce8",
        Kind::Ramd => "#6fd0c8",
        Kind::Mmio => "#f5b971",
    }
}

/// Escapes text for XML and HTML (content and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 at all: shown as the replacement character.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

// Geometry, in tenths of a pixel.
const MARGIN: u64 = 100;
const GUTTER: u64 = 1150;
const COLUMN: u64 = 2600;
const GAP: u64 = 160;
const LINE: u64 = 140;
const LEGEND_TOP: u64 = 380;
const HEADER_TOP: u64 = 700;
/// Characters of 10 px monospace text that fit in a column.
const COLUMN_CHARS: usize = ((COLUMN - 80) / 61) as usize;

/// `s` cut to `n` characters, with an ellipsis when cut.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).chain(['…']).collect()
    }
}

/// The text lines of a range's box and of its tooltip.
fn range_title(r: &Range) -> String {
    let mut t = format!(
        "{}\n{}-{} ({} prio {}, {}{})\n{}",
        r.name,
        hex16(u128::from(r.start)),
        hex16(u128::from(r.last)),
        size_text(r.end() - u128::from(r.start)),
        r.priority,
        if r.nonvolatile { "nv-" } else { "" },
        r.type_word,
        if r.offset != 0 {
            format!("offset {:#x} in the region", r.offset)
        } else {
            String::new()
        }
    );
    for s in &r.path {
        let _ = write!(t, "\n  {} {} {}", s.role, s.name, s.detail);
    }
    t.trim_end().to_string()
}

/// The whole picture.
pub fn svg(map: &Map) -> String {
    let axis = Axis::new(map.boundaries());
    let header_lines = map.columns.iter().map(|c| c.spaces.len() as u64 + 1).max().unwrap_or(1);
    let top = HEADER_TOP + header_lines * LINE + 60;
    let left = MARGIN + GUTTER;
    let mut key = String::new();
    let key_width = legend(&mut key);
    let columns_end = left + map.columns.len().max(1) as u64 * (COLUMN + GAP);
    let width = columns_end.max(key_width) + MARGIN;
    let height = top + axis.total() + 2 * MARGIN;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="10">"#,
        w = px(width),
        h = px(height)
    );
    s += concat!(
        "<defs><pattern id=\"alias\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" ",
        "patternTransform=\"rotate(45)\"><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#000\" ",
        "stroke-opacity=\"0.2\" stroke-width=\"2\"/></pattern></defs>\n",
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="14" font-weight="bold">addrspace map: {}</text>"#,
        px(MARGIN),
        px(MARGIN + 140),
        escape(&map.source)
    );
    s += &key;
    // Grid lines and boundary addresses on the shared axis.
    s += "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
    for (_, y) in axis.marks() {
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}"/>"#,
            px(MARGIN + GUTTER - 60),
            px(columns_end),
            y = px(top + y)
        );
    }
    s += "</g>\n<g fill=\"#555\" text-anchor=\"end\">\n";
    for (addr, y) in axis.marks() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            px(left - 80),
            px(top + y + 35),
            hex16(addr)
        );
    }
    s += "</g>\n";
    for (i, col) in map.columns.iter().enumerate() {
        let x = left + i as u64 * (COLUMN + GAP);
        for (l, name) in col.spaces.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" font-weight="bold">AS "{}"</text>"#,
                px(x),
                px(HEADER_TOP + l as u64 * LINE),
                escape(&fit(name, COLUMN_CHARS - 5))
            );
        }
        let root = col
            .root
            .as_deref()
            .map_or("(no rendered view)".to_string(), |r| format!("root: {r}"));
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" fill="#555">{}</text>"##,
            px(x),
            px(HEADER_TOP + col.spaces.len() as u64 * LINE),
            escape(&fit(&root, COLUMN_CHARS))
        );
        for piece in col.pieces() {
            draw_piece(&mut s, &axis, x, top, piece);
        }
    }
    s += "</svg>\n";
    s
}

/// The legend line under the title; returns where it ends.
fn legend(s: &mut String) -> u64 {
    let mut x = MARGIN;
    let mut item = |s: &mut String, fill: &str, extra: &str, label: &str| {
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="14" height="14" fill="{fill}" stroke="#444" stroke-width="0.5"{extra}/><text x="{}" y="{}">{}</text>"##,
            px(x),
            px(LEGEND_TOP - 110),
            px(x + 190),
            px(LEGEND_TOP),
            escape(label)
        );
        x += 190 + label.chars().count() as u64 * 61 + 200;
    };
    for k in KINDS {
        item(s, colour(k), "", k.label());
    }
    item(s, "url(#alias)", r#" stroke-dasharray="3 2""#, "through an alias");
    item(s, "#f3f3f3", r#" stroke-dasharray="2 2""#, "hole (unassigned)");
    x
}

/// One range or hole of the column at `x`.
fn draw_piece(s: &mut String, axis: &Axis, x: u64, top: u64, piece: Piece<'_>) {
    let (start, end) = match piece {
        Piece::Range(r) => (u128::from(r.start), r.end()),
        Piece::Hole(a, b) => (a, b),
    };
    let (y0, y1) = (top + axis.y(start), top + axis.y(end));
    let h = y1 - y0;
    let rect = |fill: &str, extra: &str| {
        format!(
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{extra}/>"#,
            px(x),
            px(y0),
            px(COLUMN),
            px(h)
        )
    };
    // Baselines: one line centred in a short box, two from the top of a tall one.
    let one = y0 + h / 2 + 35;
    let (first, second) = (y0 + 120, y0 + 240);
    match piece {
        Piece::Range(r) => {
            let _ = write!(
                s,
                "<g>{}",
                rect(colour(r.kind), r##" stroke="#333" stroke-width="0.6""##)
            );
            if r.via_alias {
                s.push_str(&rect("url(#alias)", r##" stroke="#000" stroke-dasharray="4 2""##));
            }
            let _ = write!(s, "<title>{}</title>", escape(&range_title(r)));
            let size = size_text(r.end() - u128::from(r.start));
            let tx = px(x + 60);
            if h >= 2 * LINE + 20 {
                let _ = write!(
                    s,
                    r##"<text x="{tx}" y="{}">{}</text><text x="{tx}" y="{}" fill="#444">{}</text>"##,
                    px(first),
                    escape(&fit(&r.name, COLUMN_CHARS)),
                    px(second),
                    escape(&fit(&format!("{size}, {}", r.type_word), COLUMN_CHARS))
                );
            } else {
                let label = format!("{} ({size})", r.name);
                let _ = write!(
                    s,
                    r#"<text x="{tx}" y="{}">{}</text>"#,
                    px(one),
                    escape(&fit(&label, COLUMN_CHARS))
                );
            }
            s.push_str("</g>\n");
        }
        Piece::Hole(a, b) => {
            let _ = writeln!(
                s,
                r##"<g>{}<title>unassigned {}-{} ({})</title><text x="{}" y="{}" fill="#888" font-style="italic">hole {}</text></g>"##,
                rect(
                    "#f3f3f3",
                    r##" stroke="#bbb" stroke-width="0.5" stroke-dasharray="2 2""##
                ),
                hex16(a),
                hex16(b - 1),
                size_text(b - a),
                px(x + 60),
                px(one),
                size_text(b - a)
            );
        }
    }
}
