//! `info mtree -f`: one block per distinct flat view, listing the address spaces that share
//! it (in creation order), the view's root after simplification, and its ranges.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use serde::Serialize;

use crate::io::mtree::tree::{push_owner, region_type};
use crate::machine::memory::{Memory, Snapshot, SpaceView};
use crate::model::graph::Graph;
use crate::model::region::{Body, RegionId};
use crate::view::flatview::FlatView;
use crate::view::range::FlatRange;

/// Options of `info mtree -f`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatOptions {
    /// Also print each view's lookup index (`-d`). QEMU prints its radix dispatch tree
    /// there; ours is a different structure, printed under its own heading.
    pub dispatch: bool,
    /// Show each range's region's owner text, or ` orphan` (`-o`).
    pub owners: bool,
}

/// The whole `info mtree -f` output.
#[derive(Debug, Clone, Serialize)]
pub struct FlatDump {
    /// One entry per distinct flat view.
    pub views: Vec<ViewDump>,
    /// Range lines end with their region's owner text (`-o`).
    pub owners: bool,
}

/// One flat view.
#[derive(Debug, Clone, Serialize)]
pub struct ViewDump {
    /// Address spaces using the view, in creation order.
    pub address_spaces: Vec<SpaceLine>,
    /// Name of the view's root region, `None` for the empty view.
    pub root: Option<String>,
    /// The ranges.
    pub ranges: Vec<RangeLine>,
    /// The lookup index, with `-d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<crate::view::flatview::IndexSummary>,
}

/// One ` AS "…", root: …` line.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceLine {
    /// Address-space name.
    pub name: String,
    /// Its root region's name.
    pub root: String,
    /// If the root is an alias, the alias's target name.
    pub root_alias: Option<String>,
}

/// One range line.
#[derive(Debug, Clone, Serialize)]
pub struct RangeLine {
    /// First address.
    #[serde(serialize_with = "super::hex")]
    pub start: u64,
    /// Last address (inclusive).
    #[serde(serialize_with = "super::hex")]
    pub end: u64,
    /// The terminating region's own priority.
    pub priority: i32,
    /// Non-volatile.
    pub nonvolatile: bool,
    /// Type word (`rom` when read-only through this range).
    #[serde(rename = "type")]
    pub type_word: &'static str,
    /// Terminating region name.
    pub name: String,
    /// Offset inside the region.
    #[serde(serialize_with = "super::hex")]
    pub offset: u64,
    /// The region's owner text.
    pub owner: Option<String>,
}

/// The flat views as QEMU prints them: one per physical root (roots that share a rendered
/// view because they are structurally identical are still printed apart), with the address
/// spaces using it in creation order.
pub(crate) fn view_groups<'s>(st: &'s Snapshot<'_>) -> Vec<(Option<RegionId>, Arc<FlatView>, Vec<&'s SpaceView>)> {
    let mut groups: Vec<(Option<RegionId>, Arc<FlatView>, Vec<&SpaceView>)> = Vec::new();
    let mut group_of: HashMap<Option<RegionId>, usize> = HashMap::new();
    for sp in &st.spaces {
        match group_of.get(&sp.phys) {
            Some(&g) => groups[g].2.push(sp),
            None => {
                group_of.insert(sp.phys, groups.len());
                groups.push((sp.phys, sp.view.clone(), vec![sp]));
            }
        }
    }
    groups
}

/// A range's type word as `info mtree -f` prints it: like QEMU, the region's type is read at
/// print time; only read-only comes from the range.
pub(crate) fn range_type(g: &Graph, r: &FlatRange) -> &'static str {
    match g.get(r.region()) {
        Ok(_) if !r.readonly => region_type(g, r.region()),
        _ => r.type_word(),
    }
}

/// Builds the `info mtree -f` model of `memory`.
pub fn flat_dump(memory: &Memory, opts: &FlatOptions) -> FlatDump {
    memory.inspect(|st| {
        let views = view_groups(st)
            .into_iter()
            .map(|(phys, v, spaces)| ViewDump {
                address_spaces: spaces
                    .iter()
                    .map(|sp| {
                        let root = st.graph.node(sp.root);
                        SpaceLine {
                            name: sp.name.to_string(),
                            root: root.name.to_string(),
                            root_alias: match root.body {
                                Body::Alias { target, .. } => Some(st.graph.node(target).name.to_string()),
                                _ => None,
                            },
                        }
                    })
                    .collect(),
                root: phys.map(|p| st.graph.node(p).name.to_string()),
                // Like QEMU, the region's priority is read at print time.
                ranges: v
                    .ranges()
                    .iter()
                    .map(|r| RangeLine {
                        start: r.start,
                        end: r.last,
                        priority: st.graph.get(r.region()).map_or(r.priority, |n| n.priority),
                        nonvolatile: r.nonvolatile,
                        type_word: range_type(st.graph, r),
                        name: r.name().to_string(),
                        offset: r.offset,
                        owner: st
                            .graph
                            .get(r.region())
                            .ok()
                            .and_then(|n| n.owner.as_deref().map(str::to_string)),
                    })
                    .collect(),
                index: if opts.dispatch { v.index_summary() } else { None },
            })
            .collect();
        FlatDump {
            views,
            owners: opts.owners,
        }
    })
}

impl FlatDump {
    /// QEMU's exact text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (i, v) in self.views.iter().enumerate() {
            let _ = writeln!(s, "FlatView #{i}");
            for a in &v.address_spaces {
                let _ = write!(s, " AS \"{}\", root: {}", a.name, a.root);
                if let Some(t) = &a.root_alias {
                    let _ = write!(s, ", alias {t}");
                }
                s.push('\n');
            }
            let _ = writeln!(s, " Root memory region: {}", v.root.as_deref().unwrap_or("(none)"));
            if v.ranges.is_empty() {
                s.push_str("  No rendered FlatView\n\n");
                continue;
            }
            for r in &v.ranges {
                let _ = write!(s, "  {r}");
                if self.owners {
                    push_owner(&mut s, r.owner.as_deref());
                }
                s.push('\n');
            }
            if let Some(ix) = &v.index {
                let _ = writeln!(s, "  Lookup index (addrspace buckets; not QEMU's radix dispatch tree)");
                if ix.layered {
                    let w: Vec<String> = ix.windows.iter().map(|(f, l)| format!("{f:016x}-{l:016x}")).collect();
                    if w.is_empty() {
                        let _ = writeln!(s, "    layered, no own ranges; the shared view's index:");
                    } else {
                        let _ = writeln!(
                            s,
                            "    layered: own ranges in {}; elsewhere the shared view's index:",
                            w.join(", ")
                        );
                    }
                }
                let _ = writeln!(
                    s,
                    "    {} buckets of 2^{} bytes, {:016x}..{:016x}",
                    ix.buckets, ix.bucket_bits, ix.base, ix.top
                );
                for run in &ix.runs {
                    let buckets = if run.first_bucket == run.last_bucket {
                        format!("{}", run.first_bucket)
                    } else {
                        format!("{}..{}", run.first_bucket, run.last_bucket)
                    };
                    if run.lo == run.hi {
                        let _ = writeln!(s, "      [{buckets}] range #{}", run.lo);
                    } else {
                        let _ = writeln!(s, "      [{buckets}] ranges #{}..#{}", run.lo, run.hi);
                    }
                }
            }
            s.push('\n');
        }
        s
    }
}

impl std::fmt::Display for RangeLine {
    /// QEMU's line, without its indentation: `START-END (prio P, TYPE): NAME[ @OFFSET]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nv = if self.nonvolatile { "nv-" } else { "" };
        write!(
            f,
            "{:016x}-{:016x} (prio {}, {nv}{}): {}",
            self.start, self.end, self.priority, self.type_word, self.name
        )?;
        if self.offset != 0 {
            write!(f, " @{:016x}", self.offset)?;
        }
        Ok(())
    }
}

/// `info mtree -f` as QEMU prints it.
pub fn print_flat(memory: &Memory, opts: &FlatOptions) -> String {
    flat_dump(memory, opts).to_text()
}
