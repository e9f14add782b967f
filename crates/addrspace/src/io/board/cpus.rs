//! The CPU part of board files: `[[cluster]]` tables of CPU slots and the `[[cpu-root]]`
//! templates that per-CPU roots are built from.
//!
//! ```toml
//! [[cluster]]
//! name = "cpus"
//! max-cpus = 4          # slots
//! cpus = 2              # plugged when the board is loaded (slots 0..cpus)
//! first-index = 0       # cpu_index of slot 0 (0 or absent: after the previous cluster's)
//! tlb = true            # a TCG-style TLB listener on every CPU space
//! spaces = [
//!   { index = 0, prefix = "cpu-memory", root = "system" },        # one space per CPU over a region
//!   { index = 1, prefix = "cpu-secure-memory", shared = "secure" }, # a board-owned space, shared
//!   { index = 1, prefix = "cpu-smm", per-cpu = "smm" },           # over a per-CPU root (template)
//!   # or { index = 1, prefix = "cpu-secure-memory", same-root-as = 0 }  # the root of space 0
//! ]
//!
//! [[cpu-root]]
//! id = "smm"
//! name = "memory"       # the per-CPU container's name
//! size = "2^64"
//! subregions = [
//!   { name = "memory", alias = "system", priority = 0 },
//!   { name = "smram", alias = "smram-ram", addr = "0xa0000", offset = "0xa0000", size = "128K", priority = 1 },
//!   { name = "nvic", io = "0x1000", addr = "0xe000e000", priority = 1 },   # a private device per CPU
//!   { name = "tcm", ram = "64K", addr = 0, priority = 1 },                 # private RAM per CPU
//! ]
//! ```
//!
//! `shared` names an `[[address-space]]` of the board. A `[[cpu-root]]` entry is an alias of a
//! board region (`alias`, with optional `offset` and `size`), an alias of one of the CPU's own
//! regions (`cpu-alias`: the template's `id` for the root itself, or an earlier entry's `id`),
//! or a new region per CPU: `io` (size; `ops` as for regions), `ram` (size) or `container`
//! (size). An entry goes into the CPU's root unless `in` names an earlier `container` entry.
//! `{cpu}` in a name is replaced by the CPU's index (QEMU names per-CPU regions
//! `arm-sse-cpu-container0`, `…1`). ARM's SSE-200 gives each CPU a container holding the
//! shared devices (an alias), private devices, and `alias 3`, an alias of that same container:
//!
//! ```toml
//! [[cpu-root]]
//! id = "armv7m"
//! name = "armv7m-container"
//! size = "2^64"
//! subregions = [
//!   { id = "cpu", name = "arm-sse-cpu-container{cpu}", container = "2^64", priority = -1 },
//!   { name = "arm-sse-container-alias{cpu}", alias = "armsse-container", in = "cpu", priority = -1 },
//!   { name = "cpuid{cpu}", io = "0x1000", addr = "0x4001f000", in = "cpu" },
//!   { name = "alias 3", cpu-alias = "cpu", offset = "0x40000000", size = "0x10000000",
//!     addr = "0x50000000", priority = -1500, in = "cpu" },
//! ]
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::number::Number;
use super::ops::{ops_for, OpsKind};
use crate::base::error::{Error, Result};
use crate::io::load_error::LoadError;
use crate::machine::address_space::AddressSpace;
use crate::machine::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder, PerCpuRoot};
use crate::machine::memory::Memory;
use crate::model::region::{RegionId, SIZE_2_64};

/// Results of the loader.
type LoadResult<T> = std::result::Result<T, LoadError>;

/// One `[[cluster]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterDesc {
    /// Cluster name.
    pub name: Spanned<String>,
    /// Number of CPU slots.
    pub max_cpus: Spanned<usize>,
    /// CPUs plugged at load time (slots `0..cpus`).
    #[serde(default)]
    pub cpus: Option<Spanned<usize>>,
    /// `cpu_index` of slot 0 (0 or absent: after the previous cluster's CPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_index: Option<Spanned<u32>>,
    /// TLB listeners on every CPU space.
    #[serde(default)]
    pub tlb: bool,
    /// The CPUs' address spaces.
    pub spaces: Vec<CpuSpaceDesc>,
}

/// One entry of a cluster's `spaces`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CpuSpaceDesc {
    /// Address-space index.
    pub index: Spanned<usize>,
    /// Name prefix (`<prefix>-<cpu index>`).
    pub prefix: String,
    /// A board region: one space per CPU over it.
    #[serde(default)]
    pub root: Option<Spanned<String>>,
    /// A board `[[address-space]]` shared by the cluster.
    #[serde(default)]
    pub shared: Option<Spanned<String>>,
    /// A `[[cpu-root]]` template: one root per CPU.
    #[serde(default)]
    pub per_cpu: Option<Spanned<String>>,
    /// The root of the CPU's space with this index (listed earlier).
    #[serde(default)]
    pub same_root_as: Option<Spanned<usize>>,
}

/// One `[[cpu-root]]` template.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CpuRootDesc {
    /// Template id (defaults to `name`).
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// Name of each CPU's container.
    pub name: Spanned<String>,
    /// Container size.
    pub size: Spanned<Number>,
    /// What each CPU's container holds, in the order it is added.
    #[serde(default)]
    pub subregions: Vec<CpuRootEntry>,
}

/// One entry of a `[[cpu-root]]`'s `subregions`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CpuRootEntry {
    /// How later entries refer to this one (`in`, `cpu-alias`); defaults to `name`.
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// Name of the region created per CPU (`{cpu}` is replaced by the CPU's index).
    pub name: Spanned<String>,
    /// Alias of this board region.
    #[serde(default)]
    pub alias: Option<Spanned<String>>,
    /// Alias offset.
    #[serde(default)]
    pub offset: Option<Spanned<Number>>,
    /// Alias size (default: the target's size).
    #[serde(default)]
    pub size: Option<Spanned<Number>>,
    /// A private MMIO region of this size.
    #[serde(default)]
    pub io: Option<Spanned<Number>>,
    /// Its behaviour.
    #[serde(default)]
    pub ops: Option<OpsKind>,
    /// A private RAM region of this size.
    #[serde(default)]
    pub ram: Option<Spanned<Number>>,
    /// A private container of this size.
    #[serde(default)]
    pub container: Option<Spanned<Number>>,
    /// Offset inside the per-CPU container.
    #[serde(default)]
    pub addr: Option<Spanned<Number>>,
    /// Priority.
    #[serde(default)]
    pub priority: i32,
    /// An alias of one of this CPU's own regions: the template's id (the root) or an earlier
    /// entry's id.
    #[serde(default, rename = "cpu-alias")]
    pub cpu_alias: Option<Spanned<String>>,
    /// The earlier `container` entry (by id) to map this one in, instead of the root.
    #[serde(default, rename = "in")]
    pub inside: Option<Spanned<String>>,
}

impl CpuRootEntry {
    /// How later entries refer to this one.
    pub fn key(&self) -> &Spanned<String> {
        self.id.as_ref().unwrap_or(&self.name)
    }
}

/// What a template entry creates per CPU, resolved.
#[derive(Debug, Clone)]
enum Make {
    Alias {
        target: RegionId,
        offset: u64,
        size: u128,
    },
    /// An alias of the CPU's own region `target` (0: the root, k: entry k - 1).
    OwnAlias {
        target: usize,
        offset: u64,
        size: u128,
    },
    Io(u128, OpsKind),
    Ram(u128),
    Container(u128),
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    make: Make,
    /// Where it is mapped: 0 the root, k entry k - 1.
    parent: usize,
    addr: u64,
    priority: i32,
}

/// Error helpers from the board loader.
pub(crate) trait Report {
    fn err(&self, span: std::ops::Range<usize>, msg: String) -> LoadError;
    /// A failed call on the memory system, reported at `span`.
    fn core(&self, span: std::ops::Range<usize>, e: Error) -> LoadError;
    fn num(&self, n: &Spanned<Number>, what: &str) -> LoadResult<u128>;

    /// A number that must fit in 64 bits (an address or an offset).
    fn u64(&self, n: &Spanned<Number>, what: &str) -> LoadResult<u64> {
        let v = self.num(n, what)?;
        u64::try_from(v).map_err(|_| self.err(n.span(), format!("{what} {v:#x} overflows 2^64")))
    }

    /// A region size: at most 2^64.
    fn size(&self, n: &Spanned<Number>) -> LoadResult<u128> {
        let v = self.num(n, "size")?;
        if v > SIZE_2_64 {
            return Err(self.err(n.span(), format!("size: {v:#x} exceeds 2^64")));
        }
        Ok(v)
    }
}

fn build_root(memory: &Memory, name: &str, size: u128, entries: &[Entry], cpu: u32) -> Result<PerCpuRoot> {
    let named = |n: &str| n.replace("{cpu}", &cpu.to_string());
    let mut regions = Vec::new();
    let result = (|| {
        let root = memory.container(&named(name), size)?;
        regions.push(root);
        for e in entries {
            let name = named(&e.name);
            let r = match &e.make {
                Make::Alias { target, offset, size } => memory.alias(&name, *target, *offset, *size)?,
                Make::OwnAlias { target, offset, size } => memory.alias(&name, regions[*target], *offset, *size)?,
                Make::Io(size, ops) => memory.io(&name, *size, ops_for(*ops))?,
                Make::Ram(size) => memory.ram(&name, *size)?,
                Make::Container(size) => memory.container(&name, *size)?,
            };
            regions.push(r);
            memory.add_subregion_overlap(regions[e.parent], e.addr, r, e.priority)?;
        }
        Ok(root)
    })();
    match result {
        Ok(root) => Ok(PerCpuRoot { root, regions }),
        Err(e) => {
            // Nothing half-built survives a failure.
            let _ = memory.delete_regions(&regions);
            Err(e)
        }
    }
}

/// Builds the clusters of a board once its regions and spaces exist.
pub(crate) fn build_clusters(
    clusters: &[ClusterDesc],
    roots: &[CpuRootDesc],
    memory: &Memory,
    region: &dyn Fn(&Spanned<String>) -> LoadResult<RegionId>,
    spaces: &[AddressSpace],
    cx: &dyn Report,
) -> LoadResult<Vec<Cluster>> {
    // Templates.
    let mut templates: Vec<(String, PerCpuBuilder)> = Vec::new();
    for t in roots {
        let id = t.id.as_ref().unwrap_or(&t.name);
        if templates.iter().any(|(k, _)| k == id.get_ref()) {
            return Err(cx.err(id.span(), format!("duplicate cpu-root id `{}`", id.get_ref())));
        }
        let size = cx.size(&t.size)?;
        let mut entries: Vec<Entry> = Vec::new();
        // Ids of the root (0) and of the entries so far (k + 1), with their sizes.
        let mut local: Vec<(&str, u128, bool)> = vec![(id.get_ref().as_str(), size, true)];
        for e in &t.subregions {
            let kinds = [
                e.alias.is_some(),
                e.cpu_alias.is_some(),
                e.io.is_some(),
                e.ram.is_some(),
                e.container.is_some(),
            ];
            if kinds.iter().filter(|&&k| k).count() != 1 {
                return Err(cx.err(
                    e.name.span(),
                    "give exactly one of `alias`, `cpu-alias`, `io`, `ram` or `container`".to_string(),
                ));
            }
            let key = e.key();
            if local.iter().any(|&(k, ..)| k == key.get_ref()) {
                return Err(cx.err(
                    key.span(),
                    format!(
                        "duplicate id `{}` in this cpu-root; give one a distinct `id`",
                        key.get_ref()
                    ),
                ));
            }
            let find = |r: &Spanned<String>, what: &str| -> LoadResult<usize> {
                local.iter().position(|&(k, ..)| k == r.get_ref()).ok_or_else(|| {
                    cx.err(
                        r.span(),
                        format!(
                            "unknown {what} `{}`: give the cpu-root's id or an earlier entry's id",
                            r.get_ref()
                        ),
                    )
                })
            };
            let parent = match &e.inside {
                Some(r) => {
                    let k = find(r, "container")?;
                    if !local[k].2 {
                        return Err(cx.err(r.span(), format!("`{}` is not a container", r.get_ref())));
                    }
                    k
                }
                None => 0,
            };
            let offset = e.offset.as_ref().map_or(Ok(0), |o| cx.u64(o, "offset"))?;
            let make = if let Some(a) = &e.alias {
                let target = region(a)?;
                let size = match &e.size {
                    Some(s) => cx.size(s)?,
                    None => memory.region_info(target).map_err(|e| cx.core(a.span(), e))?.size,
                };
                Make::Alias { target, offset, size }
            } else if let Some(a) = &e.cpu_alias {
                let target = find(a, "cpu-alias target")?;
                let size = match &e.size {
                    Some(s) => cx.size(s)?,
                    None => local[target].1,
                };
                Make::OwnAlias { target, offset, size }
            } else if let Some(s) = &e.io {
                Make::Io(cx.size(s)?, e.ops.unwrap_or_default())
            } else if let Some(s) = &e.ram {
                Make::Ram(cx.size(s)?)
            } else {
                Make::Container(cx.size(e.container.as_ref().expect("one kind"))?)
            };
            let addr = e.addr.as_ref().map_or(Ok(0), |a| cx.u64(a, "addr"))?;
            if (e.offset.is_some() || e.size.is_some()) && e.alias.is_none() && e.cpu_alias.is_none() {
                let span = e.offset.as_ref().or(e.size.as_ref()).expect("one is given").span();
                return Err(cx.err(
                    span,
                    "`offset` and `size` are for `alias` and `cpu-alias` entries".into(),
                ));
            }
            let entry_size = match &make {
                Make::Alias { size, .. } | Make::OwnAlias { size, .. } => *size,
                Make::Io(s, _) | Make::Ram(s) | Make::Container(s) => *s,
            };
            local.push((key.get_ref().as_str(), entry_size, matches!(make, Make::Container(_))));
            entries.push(Entry {
                name: e.name.get_ref().clone(),
                make,
                parent,
                addr,
                priority: e.priority,
            });
        }
        let name = t.name.get_ref().clone();
        let build: PerCpuBuilder = Arc::new(move |m: &Memory, cpu: u32| build_root(m, &name, size, &entries, cpu));
        templates.push((id.get_ref().clone(), build));
    }
    // Clusters.
    let mut out: Vec<Cluster> = Vec::new();
    let mut next_index = 0u32;
    // CPU indices each cluster uses: (name, first, end).
    let mut taken: Vec<(&str, u32, u32)> = Vec::new();
    for c in clusters {
        if out.iter().any(|o| o.name() == c.name.get_ref()) {
            return Err(cx.err(c.name.span(), format!("duplicate cluster `{}`", c.name.get_ref())));
        }
        let mut specs = Vec::new();
        for s in &c.spaces {
            let given = [
                s.root.is_some(),
                s.shared.is_some(),
                s.per_cpu.is_some(),
                s.same_root_as.is_some(),
            ];
            if given.iter().filter(|&&g| g).count() != 1 {
                return Err(cx.err(
                    s.index.span(),
                    "give exactly one of `root`, `shared`, `per-cpu` or `same-root-as`".to_string(),
                ));
            }
            crate::base::limits::check_space_index(&s.prefix, *s.index.get_ref())
                .map_err(|e| cx.core(s.index.span(), e))?;
            if specs.iter().any(|p: &CpuSpaceSpec| p.index == *s.index.get_ref()) {
                return Err(cx.err(
                    s.index.span(),
                    format!("address-space index {} given twice", s.index.get_ref()),
                ));
            }
            let view = if let Some(r) = &s.root {
                CpuView::Root(region(r)?)
            } else if let Some(n) = &s.shared {
                let space = spaces
                    .iter()
                    .find(|a| a.name() == n.get_ref())
                    .ok_or_else(|| cx.err(n.span(), format!("unknown address space `{}`", n.get_ref())))?;
                CpuView::Shared(space.clone())
            } else if let Some(k) = &s.same_root_as {
                if !specs.iter().any(|p: &CpuSpaceSpec| p.index == *k.get_ref()) {
                    return Err(cx.err(
                        k.span(),
                        format!("no space with index {} is listed before", k.get_ref()),
                    ));
                }
                CpuView::SameRootAs(*k.get_ref())
            } else {
                let t = s.per_cpu.as_ref().expect("one kind");
                let (_, b) = templates
                    .iter()
                    .find(|(k, _)| k == t.get_ref())
                    .ok_or_else(|| cx.err(t.span(), format!("unknown cpu-root `{}`", t.get_ref())))?;
                CpuView::PerCpu(b.clone())
            };
            specs.push(CpuSpaceSpec {
                index: *s.index.get_ref(),
                prefix: s.prefix.clone(),
                view,
            });
        }
        let max = *c.max_cpus.get_ref();
        let present = c.cpus.as_ref().map_or(max, |p| *p.get_ref());
        if present > max {
            let span = c.cpus.as_ref().expect("given").span();
            return Err(cx.err(span, format!("{present} CPUs do not fit in {max} slots")));
        }
        let first = match &c.first_index {
            Some(f) if *f.get_ref() > 0 => *f.get_ref(),
            _ => next_index,
        };
        let model = CpuModel {
            spaces: specs,
            tlb: c.tlb,
        };
        // Limits first: a huge `max-cpus` must not get as far as allocating its slots.
        let span = match &c.first_index {
            Some(f) if max <= crate::base::limits::MAX_CPUS => f.span(),
            _ => c.max_cpus.span(),
        };
        let mut cluster =
            Cluster::new(c.name.get_ref(), memory, model, first, max).map_err(|e| cx.core(span.clone(), e))?;
        let end = first + max as u32; // at most MAX_CPU_ID: checked by Cluster::new
        if let Some((other, lo, hi)) = taken.iter().find(|&&(_, lo, hi)| first < hi && lo < end) {
            return Err(cx.err(
                span,
                format!(
                    "CPU indices {first}..={} of cluster `{}` overlap those of cluster `{other}` ({lo}..={})",
                    end - 1,
                    c.name.get_ref(),
                    hi - 1
                ),
            ));
        }
        taken.push((c.name.get_ref().as_str(), first, end));
        next_index = end;
        for slot in 0..present {
            cluster.plug(slot).map_err(|e| cx.core(c.name.span(), e))?;
        }
        out.push(cluster);
    }
    Ok(out)
}
