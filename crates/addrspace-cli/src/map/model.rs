//! What the picture shows, as data: one column per distinct flat view (the address spaces
//! sharing it listed together, as `info mtree -f` groups them), each a list of ranges with
//! their kind, attributes and the path that led to them. Both the SVG and the HTML page are
//! drawn from this; the page embeds it as JSON.

use addrspace::mtree::{self, flat, FlatOptions, Hop};
use addrspace::{DirtyClient, DirtyMask, Machine};
use serde::{Serialize, Serializer};

/// The whole map of one machine.
#[derive(Debug, Serialize)]
pub struct Map {
    /// Where the machine came from (a file name), for the title.
    pub source: String,
    /// One column per distinct flat view, in address-space creation order.
    pub columns: Vec<Column>,
}

/// One flat view and the address spaces that show it.
#[derive(Debug, Serialize)]
pub struct Column {
    /// The address spaces sharing the view.
    pub spaces: Vec<String>,
    /// The view's root region, `None` for an empty view.
    pub root: Option<String>,
    /// The ranges, by address.
    pub ranges: Vec<Range>,
}

/// What answers accesses in a range, by QEMU's type word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// RAM (`ram`).
    Ram,
    /// RAM read-only through this range (`rom`).
    Rom,
    /// A ROM device in romd mode: reads from its RAM, writes to its callbacks (`romd`).
    Romd,
    /// A RAM device (`ramd`).
    Ramd,
    /// Callbacks (`i/o`), including a ROM device out of romd mode.
    Mmio,
}

impl Kind {
    /// From QEMU's type word in `info mtree -f`.
    pub fn of_type_word(word: &str) -> Kind {
        match word {
            "ram" => Kind::Ram,
            "rom" => Kind::Rom,
            "romd" => Kind::Romd,
            "ramd" => Kind::Ramd,
            _ => Kind::Mmio,
        }
    }

    /// Its name in the page's data (as serialised).
    pub fn key(self) -> &'static str {
        match self {
            Kind::Ram => "ram",
            Kind::Rom => "rom",
            Kind::Romd => "romd",
            Kind::Ramd => "ramd",
            Kind::Mmio => "mmio",
        }
    }

    /// The words the legend and the tooltips use.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ram => "RAM",
            Kind::Rom => "ROM (read-only)",
            Kind::Romd => "ROM device, romd",
            Kind::Ramd => "RAM device",
            Kind::Mmio => "MMIO (i/o)",
        }
    }
}

/// One step of the path from a space's root to the region that answers (a `lookup` hop).
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `container`, `alias` or the terminating region's kind (`ram`, `io`, ...).
    pub role: String,
    /// The region's name and id (`pc.ram #12v0`: names repeat).
    pub name: String,
    /// Where: its address in its container, its priority, the offset of the range's first
    /// address in it, and for an alias its target and alias offset.
    pub detail: String,
}

impl Step {
    fn of(h: &Hop) -> Step {
        let mut detail = format!("@{:016x} prio {}, offset {:#x}", h.addr, h.priority, h.offset);
        if let Some(a) = &h.alias {
            detail += &format!(" -> {} {} @{:#x}", a.target.name, a.target.id, a.offset);
        }
        Step {
            role: h.kind.to_string(),
            name: format!("{} {}", h.region.name, h.region.id),
            detail,
        }
    }
}

/// One flat range.
#[derive(Debug, Serialize)]
pub struct Range {
    /// First address.
    #[serde(serialize_with = "hex")]
    pub start: u64,
    /// Last address (inclusive).
    #[serde(serialize_with = "hex")]
    pub last: u64,
    /// What answers there.
    pub kind: Kind,
    /// QEMU's type word (`ram`, `rom`, `romd`, `ramd`, `i/o`).
    pub type_word: String,
    /// The terminating region's name.
    pub name: String,
    /// Offset of `start` in that region.
    #[serde(serialize_with = "hex")]
    pub offset: u64,
    /// The region's priority.
    pub priority: i32,
    /// Non-volatile.
    pub nonvolatile: bool,
    /// Read-only through this range.
    pub readonly: bool,
    /// The dirty-logging clients (`vga`, `code`, `migration`).
    pub dirty_log: Vec<&'static str>,
    /// The terminating region's id (`#12v0`), which tells same-named regions apart.
    pub region_id: String,
    /// Whether the path crossed an alias.
    pub via_alias: bool,
    /// Containers and aliases crossed from the root, at the range's first address (empty
    /// when not known).
    pub path: Vec<Step>,
}

impl Range {
    /// One past the last address.
    pub fn end(&self) -> u128 {
        u128::from(self.last) + 1
    }
}

/// A piece of a column: a range, or a hole no range covers.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    /// A flat range.
    Range(&'a Range),
    /// `[start, end)` unassigned.
    Hole(u128, u128),
}

impl Column {
    /// The column from 0 to 2^64 as ranges and the holes between them, by address.
    pub fn pieces(&self) -> Vec<Piece<'_>> {
        let mut out = Vec::with_capacity(self.ranges.len() * 2 + 1);
        let mut at: u128 = 0;
        for r in &self.ranges {
            if u128::from(r.start) > at {
                out.push(Piece::Hole(at, u128::from(r.start)));
            }
            out.push(Piece::Range(r));
            at = r.end();
        }
        if at < 1 << 64 {
            out.push(Piece::Hole(at, 1 << 64));
        }
        out
    }
}

fn hex<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{v:x}"))
}

impl Map {
    /// The map of `machine`'s flat views, as `info mtree -f` sees them.
    pub fn of(machine: &Machine, source: &str) -> Map {
        let dump = flat::flat_dump(&machine.memory, &FlatOptions::default());
        let columns = dump
            .views
            .into_iter()
            .map(|v| Column {
                spaces: v.address_spaces.into_iter().map(|a| a.name).collect(),
                root: v.root,
                ranges: v
                    .ranges
                    .into_iter()
                    .map(|r| Range {
                        start: r.start,
                        last: r.end,
                        kind: Kind::of_type_word(r.type_word),
                        type_word: r.type_word.to_string(),
                        name: r.name,
                        offset: r.offset,
                        priority: r.priority,
                        nonvolatile: r.nonvolatile,
                        readonly: r.type_word == "rom",
                        dirty_log: Vec::new(),
                        region_id: String::new(),
                        via_alias: false,
                        path: Vec::new(),
                    })
                    .collect(),
            })
            .collect();
        let mut map = Map {
            source: source.to_string(),
            columns,
        };
        map.add_paths(machine);
        map
    }

    /// Asks `lookup` about each range's first address in its column's first space (one
    /// snapshot per column): the path there, and the attributes the flat dump does not print.
    /// A range whose answer names another range (which a consistent lookup never gives) keeps
    /// what the dump said.
    fn add_paths(&mut self, machine: &Machine) {
        for col in &mut self.columns {
            let Some(space) = col.spaces.first() else { continue };
            let starts: Vec<u64> = col.ranges.iter().map(|r| r.start).collect();
            let Ok(answers) = mtree::lookup_in(&machine.memory, space, &starts) else {
                continue;
            };
            for (r, a) in col.ranges.iter_mut().zip(&answers) {
                let Some(l) = a.range.as_ref().filter(|l| l.start == r.start && l.last == r.last) else {
                    continue;
                };
                r.readonly = l.readonly;
                r.dirty_log = DirtyMask::from_bits(l.dirty_log)
                    .clients()
                    .map(DirtyClient::name)
                    .collect();
                r.region_id = l.region.id.to_string();
                r.via_alias = a.path.iter().any(|h| h.alias.is_some());
                r.path = a.path.iter().map(Step::of).collect();
            }
        }
    }

    /// Every boundary of every column, with 0 and 2^64: the shared axis's addresses.
    pub fn boundaries(&self) -> Vec<u128> {
        let mut b: Vec<u128> = vec![0, 1 << 64];
        for c in &self.columns {
            for r in &c.ranges {
                b.push(u128::from(r.start));
                b.push(r.end());
            }
        }
        b.sort_unstable();
        b.dedup();
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOARD: &str = r#"
[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [{ region = "low", addr = "0x1000" }, { region = "uart", addr = "0x9000" }]

[[region]]
name = "ram"
type = "ram"
size = "0x10000"

[[region]]
name = "low"
type = "alias"
target = "ram"
offset = "0x2000"
size = "0x3000"

[[region]]
name = "uart"
type = "io"
size = 8

[[region]]
name = "io"
type = "container"
size = "0x10000"

[[address-space]]
name = "memory"
root = "system"

[[address-space]]
name = "also-memory"
root = "system"

[[address-space]]
name = "I/O"
root = "io"
"#;

    #[test]
    fn columns_group_spaces_and_ranges_carry_their_lookup_path() {
        let m = addrspace::board::load_str(BOARD, "test.toml").unwrap();
        let map = Map::of(&m, "test.toml");
        assert_eq!(map.columns.len(), 2);
        assert_eq!(map.columns[0].spaces, ["memory", "also-memory"]);
        let r = &map.columns[0].ranges;
        assert_eq!(
            (r[0].name.as_str(), r[0].start, r[0].last, r[0].offset),
            ("ram", 0x1000, 0x3fff, 0x2000)
        );
        assert!(r[0].via_alias, "ram is reached through the alias `low`");
        let roles: Vec<&str> = r[0].path.iter().map(|s| s.role.as_str()).collect();
        assert_eq!(roles, ["container", "alias", "ram"]);
        assert!(r[0].path[1].detail.contains("-> ram"), "{:?}", r[0].path[1]);
        assert_eq!(
            (r[1].name.as_str(), r[1].kind, r[1].via_alias),
            ("uart", Kind::Mmio, false)
        );
        // An empty view is one hole; the boundaries are every column's, with 0 and 2^64.
        assert!(map.columns[1].ranges.is_empty());
        assert_eq!(map.boundaries(), [0, 0x1000, 0x4000, 0x9000, 0x9008, 1 << 64]);
    }

    #[test]
    fn pieces_tile_the_whole_space() {
        let m = addrspace::board::load_str(BOARD, "test.toml").unwrap();
        let map = Map::of(&m, "test.toml");
        for col in &map.columns {
            let mut at = 0u128;
            for p in col.pieces() {
                let (s, e) = match p {
                    Piece::Range(r) => (u128::from(r.start), r.end()),
                    Piece::Hole(s, e) => (s, e),
                };
                assert_eq!(s, at, "pieces must be contiguous");
                assert!(e > s);
                at = e;
            }
            assert_eq!(at, 1 << 64);
        }
        let kinds: Vec<bool> = map.columns[0]
            .pieces()
            .iter()
            .map(|p| matches!(p, Piece::Hole(..)))
            .collect();
        assert_eq!(kinds, [true, false, true, false, true]);
    }
}
