//! Board description files: a machine's regions, aliases and address spaces in TOML.
//!
//! ```toml
//! [[region]]
//! name = "system"
//! type = "container"
//! size = "2^64"
//! subregions = [
//!   { region = "ram-below-4g", addr = 0 },
//!   { region = "pci", addr = 0, priority = -1 },
//! ]
//!
//! [[region]]
//! name = "pc.ram"
//! type = "ram"
//! size = "512M"
//!
//! [[region]]
//! name = "ram-below-4g"
//! type = "alias"
//! target = "pc.ram"
//! size = "512M"
//!
//! [[region]]
//! name = "pci"
//! type = "container"
//! size = "2^64"
//!
//! [[address-space]]
//! name = "memory"
//! root = "system"
//! ```
//!
//! Regions are referred to by `id`, which defaults to `name` and must be unique (several
//! regions may share a `name`, as in QEMU, if they have distinct ids). A container lists what
//! is mapped in it, in the order it is added: at equal priority, later entries win.
//! Every error names the file, line and column, and what is wrong; loading never panics
//! and builds nothing unless the whole file is valid.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::access::{OpenBus, RegionOps, Unassigned};
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::memory::Memory;
use crate::region::{RegionId, SIZE_2_64};

mod export;
pub use export::export;

/// 1-based line and column of byte offset `pos` in `text`.
pub(crate) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, col)
}

/// A number written as a TOML integer or as a string (`"0x1000"`, `"64K"`, `"2^64"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// A TOML integer.
    Int(i64),
    /// A string: decimal, `0x` hex, `2^N`, with an optional K/M/G/T/P/E binary suffix.
    Str(String),
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Number, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number: an integer, or a string such as \"0x1000\", \"64K\" or \"2^64\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Number, E> {
                Ok(Number::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Number, E> {
                Ok(i64::try_from(v)
                    .map(Number::Int)
                    .unwrap_or_else(|_| Number::Str(v.to_string())))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Number, E> {
                Ok(Number::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Number {
    /// The value, or a description of what is wrong with it.
    pub fn value(&self) -> std::result::Result<u128, String> {
        match self {
            Number::Int(v) => u128::try_from(*v).map_err(|_| format!("negative value {v}")),
            Number::Str(s) => parse_number(s),
        }
    }
}

fn parse_number(s: &str) -> std::result::Result<u128, String> {
    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
    let bad = || format!("`{s}` is not a number (use 4096, \"0x1000\", \"4K\", \"2^64\")");
    if let Some(e) = t.strip_prefix("2^") {
        let e: u32 = e.parse().map_err(|_| bad())?;
        return if e <= 64 {
            Ok(1u128 << e)
        } else {
            Err(format!("`{s}` exceeds 2^64"))
        };
    }
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match body.chars().last() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p' | 'e')) if !body.starts_with("0x") || c != 'e' => {
            let shift = 10 * (1 + "kmgtpe".find(c).expect("listed") as u32);
            (&body[..body.len() - 1], shift)
        }
        _ => (body, 0),
    };
    let v = match digits.strip_prefix("0x") {
        Some(h) => u128::from_str_radix(h, 16),
        None => digits.parse::<u128>(),
    }
    .map_err(|_| bad())?;
    v.checked_shl(shift)
        .filter(|r| r >> shift == v)
        .ok_or_else(|| format!("`{s}` exceeds 2^64"))
}

/// One entry of a container's `subregions` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Id of the region to map.
    pub region: Spanned<String>,
    /// Offset inside the container.
    #[serde(default = "zero")]
    pub addr: Spanned<Number>,
    /// Priority among siblings.
    #[serde(default)]
    pub priority: i32,
}

fn zero() -> Spanned<Number> {
    Spanned::new(0..0, Number::Int(0))
}

fn yes() -> bool {
    true
}

/// Region types of a board file.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RegionType {
    /// A pure container.
    Container,
    /// RAM.
    Ram,
    /// ROM (read-only RAM).
    Rom,
    /// A ROM device.
    RomDevice,
    /// A RAM device.
    RamDevice,
    /// MMIO; fills its own gaps when it has subregions.
    Io,
    /// A reservation.
    Reservation,
    /// An alias.
    Alias,
}

/// Built-in device behaviours for `io` and `rom-device` regions.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OpsKind {
    /// Every access fails with a decode error (QEMU's `unassigned_mem_ops`).
    #[default]
    Unassigned,
    /// Reads return all ones, writes are ignored (QEMU's `unassigned_io_ops`).
    OpenBus,
}

/// The device behind an `ops` kind.
pub(crate) fn ops_for(kind: OpsKind) -> Arc<dyn RegionOps> {
    match kind {
        OpsKind::Unassigned => Arc::new(Unassigned),
        OpsKind::OpenBus => Arc::new(OpenBus),
    }
}

/// One `[[region]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionDesc {
    /// Unique key (defaults to `name`).
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// Region name (as printed by `info mtree`).
    pub name: Spanned<String>,
    /// Region type.
    #[serde(rename = "type")]
    pub ty: RegionType,
    /// Size in bytes, up to 2^64.
    pub size: Spanned<Number>,
    /// Alias target id.
    #[serde(default)]
    pub target: Option<Spanned<String>>,
    /// Alias offset inside the target.
    #[serde(default)]
    pub offset: Option<Spanned<Number>>,
    /// Device behaviour for `io` and `rom-device`.
    #[serde(default)]
    pub ops: Option<OpsKind>,
    /// Enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Read-only.
    #[serde(default)]
    pub readonly: bool,
    /// Non-volatile.
    #[serde(default)]
    pub nonvolatile: bool,
    /// Unmergeable.
    #[serde(default)]
    pub unmergeable: bool,
    /// romd mode of a ROM device (default true).
    #[serde(default = "yes")]
    pub romd: bool,
    /// Offset of a region mapped nowhere (shown by `info mtree` sections).
    #[serde(default)]
    pub addr: Option<Spanned<Number>>,
    /// Priority of a region mapped nowhere (shown by `info mtree` sections); a mapped
    /// region's priority is given where it is mapped.
    #[serde(default)]
    pub priority: Option<Spanned<i32>>,
    /// What is mapped in this region, in the order it is added.
    #[serde(default)]
    pub subregions: Vec<Placement>,
}

impl RegionDesc {
    /// The region's unique key.
    pub fn key(&self) -> &Spanned<String> {
        self.id.as_ref().unwrap_or(&self.name)
    }
}

/// One `[[address-space]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceDesc {
    /// Address-space name (need not be unique).
    pub name: String,
    /// Id of the root region.
    pub root: Spanned<String>,
}

/// A whole board file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BoardDesc {
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
    /// Regions.
    #[serde(default, rename = "region")]
    pub regions: Vec<RegionDesc>,
    /// Address spaces, in creation order.
    #[serde(default, rename = "address-space")]
    pub spaces: Vec<SpaceDesc>,
    /// CPU clusters (see [`crate::cpu`]).
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<crate::board_cpus::ClusterDesc>,
    /// Templates of per-CPU roots.
    #[serde(default, rename = "cpu-root")]
    pub cpu_roots: Vec<crate::board_cpus::CpuRootDesc>,
}

impl crate::board_cpus::Report for Ctx<'_> {
    fn err(&self, span: std::ops::Range<usize>, msg: String) -> Error {
        Ctx::err(self, span, msg)
    }
    fn num(&self, n: &Spanned<Number>, what: &str) -> Result<u128> {
        Ctx::num(self, n, what)
    }
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: std::ops::Range<usize>, msg: impl Into<String>) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::Board {
            file: self.file.to_string(),
            line,
            column,
            msg: msg.into(),
        }
    }

    fn num(&self, n: &Spanned<Number>, what: &str) -> Result<u128> {
        n.get_ref()
            .value()
            .map_err(|m| self.err(n.span(), format!("{what}: {m}")))
    }

    fn u64(&self, n: &Spanned<Number>, what: &str) -> Result<u64> {
        let v = self.num(n, what)?;
        u64::try_from(v).map_err(|_| self.err(n.span(), format!("{what} {v:#x} overflows 2^64")))
    }
}

/// Loads a board file from disk.
pub fn load_file(path: &Path) -> Result<Machine> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, &path.display().to_string())
}

/// Loads a board description from text; `file` names it in errors.
///
/// ```
/// let board = r#"
/// [[region]]
/// name = "system"
/// type = "container"
/// size = "2^64"
/// subregions = [{ region = "ram", addr = "0x1000" }]
///
/// [[region]]
/// name = "ram"
/// type = "ram"
/// size = "64K"
///
/// [[address-space]]
/// name = "memory"
/// root = "system"
/// "#;
/// let machine = addrspace::board::load_str(board, "tiny.toml")?;
/// let view = machine.address_space("memory").unwrap().view();
/// assert_eq!(view.ranges()[0].name(), "ram");
///
/// let err = addrspace::board::load_str("[[region]]\nname = 1\n", "bad.toml").unwrap_err();
/// assert!(err.to_string().starts_with("bad.toml:2:"));
/// # Ok::<(), addrspace::Error>(())
/// ```
pub fn load_str(text: &str, file: &str) -> Result<Machine> {
    let cx = Ctx { file, text };
    let desc: BoardDesc = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, e.message().trim_end().to_string())
    })?;
    build(&desc, &cx)
}

fn build(desc: &BoardDesc, cx: &Ctx<'_>) -> Result<Machine> {
    // Unique ids.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, r) in desc.regions.iter().enumerate() {
        let key = r.key();
        if index.insert(key.get_ref(), i).is_some() {
            return Err(cx.err(
                key.span(),
                format!(
                    "duplicate region id `{}`; give one of them a distinct `id`",
                    key.get_ref()
                ),
            ));
        }
    }
    let lookup = |s: &Spanned<String>, what: &str| -> Result<usize> {
        index
            .get(s.get_ref().as_str())
            .copied()
            .ok_or_else(|| cx.err(s.span(), format!("unknown {what} `{}`", s.get_ref())))
    };
    // Per-region checks.
    let mut sizes = Vec::with_capacity(desc.regions.len());
    let mut targets: Vec<Option<usize>> = vec![None; desc.regions.len()];
    for (i, r) in desc.regions.iter().enumerate() {
        let size = cx.num(&r.size, "size")?;
        if size > SIZE_2_64 {
            return Err(cx.err(r.size.span(), format!("size: {size:#x} exceeds 2^64")));
        }
        sizes.push(size);
        let is_alias = r.ty == RegionType::Alias;
        match (&r.target, is_alias) {
            (Some(t), true) => targets[i] = Some(lookup(t, "alias target")?),
            (None, true) => return Err(cx.err(r.name.span(), "an alias needs a `target`")),
            (Some(t), false) => return Err(cx.err(t.span(), "`target` is only for aliases")),
            (None, false) => {}
        }
        if let Some(o) = &r.offset {
            if !is_alias {
                return Err(cx.err(o.span(), "`offset` is only for aliases"));
            }
            cx.u64(o, "alias offset")?;
        }
        if let Some(a) = &r.addr {
            cx.u64(a, "addr")?;
        }
        if is_alias && !r.subregions.is_empty() {
            return Err(cx.err(r.subregions[0].region.span(), "an alias cannot contain subregions"));
        }
        if r.ops.is_some() && !matches!(r.ty, RegionType::Io | RegionType::RomDevice) {
            return Err(cx.err(r.name.span(), "`ops` is only for `io` and `rom-device` regions"));
        }
    }
    // Alias cycles.
    for start in 0..desc.regions.len() {
        let mut seen = HashSet::new();
        let mut x = start;
        while let Some(t) = targets[x] {
            if !seen.insert(x) {
                let r = &desc.regions[start];
                return Err(cx.err(
                    r.target.as_ref().map_or(r.name.span(), |t| t.span()),
                    format!("alias cycle through `{}`", r.key().get_ref()),
                ));
            }
            x = t;
        }
    }
    // Placements: each region in at most one container; addresses in range.
    let mut parent: Vec<Option<usize>> = vec![None; desc.regions.len()];
    for (ci, c) in desc.regions.iter().enumerate() {
        for p in &c.subregions {
            let k = lookup(&p.region, "region")?;
            if let Some(prev) = parent[k] {
                return Err(cx.err(
                    p.region.span(),
                    format!(
                        "region `{}` is placed in two containers (`{}` and `{}`); map an alias instead",
                        p.region.get_ref(),
                        desc.regions[prev].key().get_ref(),
                        c.key().get_ref()
                    ),
                ));
            }
            parent[k] = Some(ci);
            let addr = cx.u64(&p.addr, "addr")?;
            if u128::from(addr) + sizes[k] > SIZE_2_64 {
                return Err(cx.err(
                    p.addr.span(),
                    format!(
                        "`{}` at {addr:#x} with size {:#x} overflows 2^64",
                        p.region.get_ref(),
                        sizes[k]
                    ),
                ));
            }
        }
    }
    for (i, r) in desc.regions.iter().enumerate() {
        if let (Some(p), Some(c)) = (&r.priority, parent[i]) {
            return Err(cx.err(
                p.span(),
                format!(
                    "`{}` is mapped in `{}`: give its priority in that `subregions` entry",
                    r.key().get_ref(),
                    desc.regions[c].key().get_ref()
                ),
            ));
        }
    }
    for s in &desc.spaces {
        lookup(&s.root, "address-space root")?;
    }
    // Build. Library errors (cycles, host memory) are reported at the region's line.
    let memory = Memory::new();
    let mut ids: Vec<Option<RegionId>> = vec![None; desc.regions.len()];
    let at = |i: usize, e: Error| cx.err(desc.regions[i].key().span(), e.to_string());
    for (i, r) in desc.regions.iter().enumerate() {
        let name = r.name.get_ref().as_str();
        let ops = || ops_for(r.ops.unwrap_or_default());
        let made = match r.ty {
            RegionType::Container => memory.container(name, sizes[i]),
            RegionType::Ram => memory.ram(name, sizes[i]),
            RegionType::Rom => memory.rom(name, sizes[i]),
            RegionType::RomDevice => memory.rom_device(name, sizes[i], ops()),
            RegionType::RamDevice => memory.ram_device(name, sizes[i]),
            RegionType::Io => memory.io(name, sizes[i], ops()),
            RegionType::Reservation => memory.reservation(name, sizes[i]),
            RegionType::Alias => continue,
        };
        ids[i] = Some(made.map_err(|e| at(i, e))?);
    }
    for start in 0..desc.regions.len() {
        let mut chain = Vec::new();
        let mut x = start;
        while ids[x].is_none() {
            chain.push(x);
            x = targets[x].expect("only aliases are not built yet");
        }
        while let Some(a) = chain.pop() {
            let r = &desc.regions[a];
            let offset = r.offset.as_ref().map_or(Ok(0), |o| cx.u64(o, "alias offset"))?;
            let target = ids[targets[a].expect("alias")].expect("built");
            ids[a] = Some(
                memory
                    .alias(r.name.get_ref(), target, offset, sizes[a])
                    .map_err(|e| at(a, e))?,
            );
        }
    }
    let id = |i: usize| ids[i].expect("all built");
    {
        let tx = memory.transaction();
        for (i, r) in desc.regions.iter().enumerate() {
            for p in &r.subregions {
                let k = index[p.region.get_ref().as_str()];
                let addr = cx.u64(&p.addr, "addr")?;
                tx.add_subregion_overlap(id(i), addr, id(k), p.priority)
                    .map_err(|e| cx.err(p.region.span(), e.to_string()))?;
            }
            let set = |r: Result<()>| r.map_err(|e| at(i, e));
            if parent[i].is_none() {
                if let Some(a) = &r.addr {
                    set(tx.set_address(id(i), cx.u64(a, "addr")?))?;
                }
                if let Some(p) = &r.priority {
                    set(tx.set_priority(id(i), *p.get_ref()))?;
                }
            }
            set(tx.set_readonly(id(i), r.readonly || r.ty == RegionType::Rom))?;
            set(tx.set_nonvolatile(id(i), r.nonvolatile))?;
            set(tx.set_unmergeable(id(i), r.unmergeable))?;
            if r.ty == RegionType::RomDevice {
                set(tx.set_romd(id(i), r.romd))?;
            }
            set(tx.set_enabled(id(i), r.enabled))?;
        }
    }
    let mut address_spaces = Vec::new();
    {
        // One commit for all: per-CPU views then borrow from whichever views they show.
        let _tx = memory.transaction();
        for s in &desc.spaces {
            let root = id(index[s.root.get_ref().as_str()]);
            address_spaces.push(memory.address_space(&s.name, root)?);
        }
    }
    let region = |s: &Spanned<String>| -> Result<RegionId> { Ok(id(lookup(s, "region")?)) };
    let clusters =
        crate::board_cpus::build_clusters(&desc.clusters, &desc.cpu_roots, &memory, &region, &address_spaces, cx)?;
    let regions = desc
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key().get_ref().clone(), id(i)))
        .collect();
    Ok(Machine {
        memory,
        address_spaces,
        regions,
        clusters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("4096"), Ok(4096));
        assert_eq!(parse_number("0x1000"), Ok(4096));
        assert_eq!(parse_number("4K"), Ok(4096));
        assert_eq!(parse_number("4KiB"), Ok(4096));
        assert_eq!(parse_number("512M"), Ok(512 << 20));
        assert_eq!(parse_number("16E"), Ok(SIZE_2_64));
        assert_eq!(parse_number("2^64"), Ok(SIZE_2_64));
        assert_eq!(parse_number("0xffff_ffff"), Ok(0xffff_ffff));
        assert_eq!(parse_number("0xe"), Ok(14), "hex digit e is not the exa suffix");
        assert!(parse_number("2^65").is_err());
        assert!(parse_number("lots").is_err());
        assert!(parse_number("0x1_0000_0000_0000_0000_0000_0000_0000_0000").is_err());
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
