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
//!
//! Loading costs linear time in the file (a 20 000-deep nesting or alias chain is one walk),
//! and [`export`] writes a machine back as a board file that loads to the same machine.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::base::error::Error;
use crate::io::board::cpus::Report as _;
use crate::io::load_error::LoadError;
use crate::machine::assembly::Machine;
use crate::machine::memory::Memory;
use crate::model::region::{RegionId, SIZE_2_64};

mod cpus;
mod devices;
mod export;
mod number;
mod ops;
pub use cpus::{ClusterDesc, CpuRootDesc, CpuRootEntry, CpuSpaceDesc};
pub use devices::{DeviceKind, DeviceRequest, Loader};
pub use export::export;
pub use number::Number;
pub(crate) use ops::ops_for;
pub use ops::OpsKind;

/// 1-based line and column of byte offset `pos` in `text`.
pub(crate) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, col)
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
#[non_exhaustive]
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
    /// Device behaviour for `io` and `rom-device`: a built-in [`OpsKind`] (`unassigned`,
    /// `open-bus`) or the name of a device model the VMM binds with a [`Loader`].
    #[serde(default)]
    pub ops: Option<Spanned<String>>,
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
    /// The owner text `info mtree -o` prints after the region, in QEMU's words (e.g.
    /// `owner:{dev id=serial0}`); see [`crate::Memory::set_owner`].
    #[serde(default)]
    pub owner: Option<String>,
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
    /// CPU clusters (see [`crate::machine::cpu`]).
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<ClusterDesc>,
    /// Templates of per-CPU roots.
    #[serde(default, rename = "cpu-root")]
    pub cpu_roots: Vec<CpuRootDesc>,
}

/// Results of the loader.
type Result<T, E = LoadError> = std::result::Result<T, E>;

impl crate::io::board::cpus::Report for Ctx<'_> {
    fn err(&self, span: std::ops::Range<usize>, msg: String) -> LoadError {
        Ctx::err(self, span, msg)
    }
    fn core(&self, span: std::ops::Range<usize>, e: Error) -> LoadError {
        Ctx::core(self, span, e)
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
    fn err(&self, span: std::ops::Range<usize>, msg: impl Into<String>) -> LoadError {
        let (line, column) = line_col(self.text, span.start);
        LoadError::board(self.file, line, column, msg.into(), None)
    }

    /// A failed call on the memory system, reported at `span`.
    fn core(&self, span: std::ops::Range<usize>, e: Error) -> LoadError {
        let (line, column) = line_col(self.text, span.start);
        LoadError::board(self.file, line, column, e.to_string(), Some(e))
    }

    fn num(&self, n: &Spanned<Number>, what: &str) -> Result<u128> {
        n.get_ref()
            .value()
            .map_err(|m| self.err(n.span(), format!("{what}: {m}")))
    }
}

/// Loads a board file from disk, with the built-in device behaviours only (see [`Loader`]
/// to bind device models).
///
/// A file that is not UTF-8 is a [`LoadError::Board`] at the first byte that is not.
pub fn load_file(path: &Path) -> Result<Machine> {
    Loader::new().load_file(path)
}

/// Reads a board file: its text and its name for errors.
fn read_file(path: &Path) -> Result<(String, String)> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let text = std::str::from_utf8(&bytes[..good]).expect("valid up to here");
        let cx = Ctx { file: &file, text };
        cx.err(good..good, format!("not UTF-8: byte {:#04x}", bytes[good]))
    })?;
    Ok((text, file))
}

/// Loads a board description from text, with the built-in device behaviours only (see
/// [`Loader`] to bind device models); `file` names it in errors.
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
/// # Ok::<(), addrspace::LoadError>(())
/// ```
pub fn load_str(text: &str, file: &str) -> Result<Machine> {
    Loader::new().load_str(text, file)
}

fn load_with(text: &str, file: &str, loader: &mut Loader<'_>) -> Result<Machine> {
    let cx = Ctx { file, text };
    let desc: BoardDesc = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, e.message().trim_end().to_string())
    })?;
    build(&desc, &cx, loader)
}

fn build(desc: &BoardDesc, cx: &Ctx<'_>, loader: &mut Loader<'_>) -> Result<Machine> {
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
        let size = cx.size(&r.size)?;
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
        if loader.bound.contains_key(r.key().get_ref()) && !matches!(r.ty, RegionType::Io | RegionType::RomDevice) {
            return Err(cx.err(
                r.key().span(),
                format!(
                    "a device model is bound to `{}`, which is not an `io` or `rom-device` region",
                    r.key().get_ref()
                ),
            ));
        }
    }
    // Alias cycles: each alias walked once (a chain of 20 000 aliases is one walk); the
    // error names the first alias, in file order, that leads into a cycle.
    let aliases = crate::io::build_order::alias_order(&targets).map_err(|start| {
        let r = &desc.regions[start];
        cx.err(
            r.target.as_ref().map_or(r.name.span(), |t| t.span()),
            format!("alias cycle through `{}`", r.key().get_ref()),
        )
    })?;
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
    // Build. Library errors (cycles, host memory) are reported at the region's line. Each
    // region gets its flags while nothing can see it, aliases come after their targets, and
    // containers are filled bottom-up, so no step walks a long chain of containers above it.
    let memory = Memory::new();
    // Device models first, before any transaction: the resolver is the VMM's code.
    let (mut ops, devices) = devices::resolve(desc, cx, loader, &memory)?;
    let mut ids: Vec<Option<RegionId>> = vec![None; desc.regions.len()];
    let at = |i: usize, e: Error| cx.core(desc.regions[i].key().span(), e);
    {
        let tx = memory.transaction();
        let flags = |i: usize, id: RegionId| -> Result<()> {
            let r = &desc.regions[i];
            let set = |r: Result<(), Error>| r.map_err(|e| at(i, e));
            if parent[i].is_none() {
                if let Some(a) = &r.addr {
                    set(tx.set_address(id, cx.u64(a, "addr")?))?;
                }
                if let Some(p) = &r.priority {
                    set(tx.set_priority(id, *p.get_ref()))?;
                }
            }
            if r.readonly && r.ty != RegionType::Rom {
                set(tx.set_readonly(id, true))?;
            }
            if r.nonvolatile {
                set(tx.set_nonvolatile(id, true))?;
            }
            if r.unmergeable {
                set(tx.set_unmergeable(id, true))?;
            }
            if r.ty == RegionType::RomDevice && !r.romd {
                set(tx.set_romd(id, false))?;
            }
            if !r.enabled {
                set(tx.set_enabled(id, false))?;
            }
            if r.owner.is_some() {
                set(tx.set_owner(id, r.owner.as_deref()))?;
            }
            Ok(())
        };
        for (i, r) in desc.regions.iter().enumerate() {
            let name = r.name.get_ref().as_str();
            let mut ops = || ops[i].take().expect("resolved for every device region");
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
            let id = made.map_err(|e| at(i, e))?;
            flags(i, id)?;
            ids[i] = Some(id);
        }
        for &a in &aliases {
            let r = &desc.regions[a];
            let offset = r.offset.as_ref().map_or(Ok(0), |o| cx.u64(o, "alias offset"))?;
            let target = ids[targets[a].expect("alias")].expect("targets come first");
            let id = memory
                .alias(r.name.get_ref(), target, offset, sizes[a])
                .map_err(|e| at(a, e))?;
            flags(a, id)?;
            ids[a] = Some(id);
        }
        let id = |i: usize| ids[i].expect("all built");
        for ci in crate::io::build_order::fill_order(&parent) {
            for p in &desc.regions[ci].subregions {
                let k = index[p.region.get_ref().as_str()];
                let addr = cx.u64(&p.addr, "addr")?;
                tx.add_subregion_overlap(id(ci), addr, id(k), p.priority)
                    .map_err(|e| cx.core(p.region.span(), e))?;
            }
        }
    }
    let id = |i: usize| ids[i].expect("all built");
    let mut address_spaces = Vec::new();
    {
        // One commit for all: per-CPU views then borrow from whichever views they show.
        let _tx = memory.transaction();
        for s in &desc.spaces {
            let root = id(index[s.root.get_ref().as_str()]);
            let space = memory.address_space(&s.name, root);
            address_spaces.push(space.map_err(|e| cx.core(s.root.span(), e))?);
        }
    }
    let region = |s: &Spanned<String>| -> Result<RegionId> { Ok(id(lookup(s, "region")?)) };
    let clusters =
        crate::io::board::cpus::build_clusters(&desc.clusters, &desc.cpu_roots, &memory, &region, &address_spaces, cx)?;
    let regions = desc
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key().get_ref().clone(), id(i)))
        .collect();
    // Kept as TOML for `export` (the CPUs' regions and spaces come back from these tables).
    let cpu_tables = export::tables("cluster", &desc.clusters)
        .and_then(|c| Ok(c + &export::tables("cpu-root", &desc.cpu_roots)?))
        .map_err(|m| cx.err(0..0, m))?;
    Ok(Machine {
        memory,
        address_spaces,
        regions,
        clusters,
        description: desc.description.clone(),
        cpu_tables,
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
