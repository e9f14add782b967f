//! Memory regions: identities, kinds and attributes.
//!
//! A region is a node of the writer-side graph owned by [`crate::Memory`]. Containers hold
//! subregions at offsets and priorities; aliases are windows onto another region; every other
//! kind *terminates* rendering and ends up in flat views. Terminating regions carry a
//! [`Leaf`]: the part of the region that readers need (name, RAM block, device ops), shared by
//! `Arc` so that a flat view keeps it alive however the graph changes.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::base::access::{AccessRules, RegionOps};
use crate::base::ram::RamBlock;

/// 2^64: the size of a region that spans the whole 64-bit address space.
pub const SIZE_2_64: u128 = 1 << 64;

/// Identity of a region inside one [`crate::Memory`]. Ids of deleted regions are never
/// reused for a live region (a generation counter tells them apart; a slot is retired
/// before its counter wraps), and an id from another `Memory` is refused with
/// [`crate::Error::UnknownRegion`] (each memory system stamps its ids with a tag of its own;
/// tags repeat only after 2^32 memory systems in one process).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RegionId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
    /// The memory system's tag (see `crate::model::slots`).
    pub(crate) tag: u32,
}

impl Hash for RegionId {
    /// Index and generation only: ids in one map come from one memory system, whose tag
    /// adds nothing (and equal ids still hash alike).
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.index.hash(h);
        self.generation.hash(h);
    }
}

impl fmt::Debug for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}v{}", self.index, self.generation)
    }
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The kind of a region, as reported by [`crate::Memory::region_info`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegionKind {
    /// A pure container: holes fall through to lower-priority siblings.
    Container,
    /// Host-backed RAM (ROM is RAM with the read-only flag).
    Ram,
    /// Device memory mapped into the host, accessed through loads/stores of 1 to 8 bytes
    /// (QEMU's `ram_device`, printed `ramd`).
    RamDevice,
    /// A ROM device: RAM-backed reads in romd mode, writes (and non-romd reads) to ops.
    RomDevice,
    /// MMIO or port I/O handled by [`RegionOps`]; fills its own gaps if it has subregions.
    Io,
    /// A range that nothing handles: every access is refused.
    Reservation,
    /// A window onto another region.
    Alias,
}

impl RegionKind {
    /// Whether regions of this kind are rendered as flat ranges (QEMU's `terminates`).
    pub fn terminates(self) -> bool {
        !matches!(self, RegionKind::Container | RegionKind::Alias)
    }

    /// Lower-case name used in messages and board files.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionKind::Container => "container",
            RegionKind::Ram => "ram",
            RegionKind::RamDevice => "ram-device",
            RegionKind::RomDevice => "rom-device",
            RegionKind::Io => "io",
            RegionKind::Reservation => "reservation",
            RegionKind::Alias => "alias",
        }
    }

    /// The board file's `type` word of a region of this kind: [`as_str`](Self::as_str), except
    /// that read-only RAM is `rom`.
    pub fn type_word(self, readonly: bool) -> &'static str {
        match self {
            RegionKind::Ram if readonly => "rom",
            k => k.as_str(),
        }
    }
}

/// What a terminating region does with accesses: the reader-side half of a region.
#[derive(Clone)]
#[non_exhaustive]
pub enum Backend {
    /// RAM or ROM: direct access to host memory.
    Ram(Arc<RamBlock>),
    /// RAM device: host memory accessed by sized loads and stores.
    RamDevice(Arc<RamBlock>),
    /// ROM device: RAM for romd-mode reads, ops for the rest.
    RomDevice(Arc<RamBlock>, Arc<dyn RegionOps>),
    /// MMIO handled by ops.
    Io(Arc<dyn RegionOps>),
    /// Nothing handles accesses.
    Reservation,
}

impl Backend {
    pub(crate) fn kind(&self) -> RegionKind {
        match self {
            Backend::Ram(_) => RegionKind::Ram,
            Backend::RamDevice(_) => RegionKind::RamDevice,
            Backend::RomDevice(..) => RegionKind::RomDevice,
            Backend::Io(_) => RegionKind::Io,
            Backend::Reservation => RegionKind::Reservation,
        }
    }

    /// QEMU's `memory_region_type` word for a region with this backend: `ramd`, `romd` (a
    /// ROM device in romd mode), `rom` (read-only RAM), `ram`, or `i/o`.
    pub fn type_word(&self, romd: bool, readonly: bool) -> &'static str {
        match self {
            Backend::RamDevice(_) => "ramd",
            Backend::RomDevice(..) if romd => "romd",
            Backend::Ram(_) if readonly => "rom",
            Backend::Ram(_) => "ram",
            _ => "i/o",
        }
    }

    /// The RAM block behind this backend, if any.
    pub fn ram(&self) -> Option<&Arc<RamBlock>> {
        match self {
            Backend::Ram(b) | Backend::RamDevice(b) | Backend::RomDevice(b, _) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().as_str())
    }
}

/// The reader-side identity of a terminating region: what flat views point at.
#[derive(Debug)]
pub struct Leaf {
    pub(crate) id: RegionId,
    pub(crate) name: Arc<str>,
    pub(crate) backend: Backend,
    /// The ops' access rules, read once at creation (the default rules for RAM).
    pub(crate) rules: AccessRules,
    /// The region's ioeventfds, for software dispatch of writes.
    pub(crate) eventfds: crate::base::ioeventfd::SoftEventFds,
}

impl Leaf {
    /// The region this leaf belongs to.
    pub fn id(&self) -> RegionId {
        self.id
    }
    /// The region's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// How accesses are handled.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
    /// The device's access rules (fixed when the region was created).
    pub fn rules(&self) -> &AccessRules {
        &self.rules
    }
}

/// The structural part of a region that rendering walks.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Container,
    Alias { target: RegionId, offset: u64 },
    Leaf(Arc<Leaf>),
}

/// One region node of the graph.
#[derive(Debug)]
pub(crate) struct Node {
    pub name: Arc<str>,
    pub body: Body,
    pub size: u128,
    pub addr: u64,
    pub priority: i32,
    pub enabled: bool,
    pub readonly: bool,
    pub nonvolatile: bool,
    pub unmergeable: bool,
    pub romd: bool,
    /// QEMU's owner text (`info mtree -o`), e.g. `owner:{dev id=uart0}`; printing only.
    pub owner: Option<Arc<str>>,
    pub container: Option<RegionId>,
    /// Subregions in *ascending* precedence — lowest priority first, oldest first among
    /// equal priorities, i.e. ascending `(priority, seq)` — which is QEMU's list reversed:
    /// mapping the newest region of the highest priority (the common case) is a push. Inside
    /// a transaction the list may be out of order (`unsorted`): any other insertion is a push
    /// too, and the graph sorts such lists once, before anything reads them
    /// ([`Graph::normalize`](crate::model::graph::Graph::normalize)). Iterate with `.rev()` for
    /// QEMU's list order.
    pub subregions: Vec<RegionId>,
    /// `subregions` needs sorting (see there).
    pub unsorted: bool,
    /// Its place in its container's `subregions` while that list is unsorted (so that taking
    /// it out is O(1) then; a sorted list is searched by `(priority, seq)`).
    pub slot: u32,
    /// When this region was last mapped (a graph-wide counter): among siblings of equal
    /// priority, the larger `seq` is the newer and wins.
    pub seq: u64,
    /// Aliases whose target is this region (the reverse edges a scoped commit follows).
    pub aliases: Vec<RegionId>,
    /// Per dirty-logging client, how many users asked for logging (QEMU counts VGA users).
    pub log_counts: [u32; 3],
    /// Coalesced-MMIO ranges, as (offset, size) inside the region.
    pub coalesced: Vec<(u64, u64)>,
    /// ioeventfd registrations, sorted, with region offsets.
    pub eventfds: Vec<crate::base::ioeventfd::IoEventFd>,
    /// Address spaces whose root is this region.
    pub space_users: u32,
    /// A rendered view is rooted here (commits carry changed windows up to such regions).
    pub view_key: bool,
    /// Rendering may lead from here to a region on a cycle (see `cycle`). Conservative: set
    /// for every region that does, and never cleared while the region lives, so it may stay
    /// set after the cycle is gone; the cycle check uses it only to skip work.
    pub leads_to_cycle: bool,
    /// The renderer's address index of the subregions (built on demand; reset whenever a
    /// child is added, removed, moved or resized).
    pub child_index: std::sync::OnceLock<Arc<crate::model::child_index::ChildIndex>>,
}

impl Node {
    pub(crate) fn new(name: Arc<str>, body: Body, size: u128) -> Node {
        Node {
            name,
            body,
            size,
            addr: 0,
            priority: 0,
            enabled: true,
            readonly: false,
            nonvolatile: false,
            unmergeable: false,
            romd: true,
            owner: None,
            container: None,
            subregions: Vec::new(),
            unsorted: false,
            slot: 0,
            seq: 0,
            aliases: Vec::new(),
            log_counts: [0; 3],
            coalesced: Vec::new(),
            eventfds: Vec::new(),
            space_users: 0,
            view_key: false,
            leads_to_cycle: false,
            child_index: std::sync::OnceLock::new(),
        }
    }

    /// The region's own dirty-logging clients (those with a non-zero count).
    pub(crate) fn log_mask(&self) -> crate::base::dirty::DirtyMask {
        let mut m = 0;
        for (c, &n) in self.log_counts.iter().enumerate() {
            if n > 0 {
                m |= 1 << c;
            }
        }
        crate::base::dirty::DirtyMask(m)
    }

    pub(crate) fn kind(&self) -> RegionKind {
        match &self.body {
            Body::Container => RegionKind::Container,
            Body::Alias { .. } => RegionKind::Alias,
            Body::Leaf(l) => l.backend.kind(),
        }
    }
}

/// A snapshot of one region's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region's name (not necessarily unique).
    pub name: String,
    /// Its kind.
    pub kind: RegionKind,
    /// Size in bytes (up to 2^64).
    pub size: u128,
    /// Offset inside its container.
    pub addr: u64,
    /// Priority among its siblings.
    pub priority: i32,
    /// Whether it is rendered at all.
    pub enabled: bool,
    /// Read-only flag.
    pub readonly: bool,
    /// Non-volatile flag.
    pub nonvolatile: bool,
    /// Unmergeable flag.
    pub unmergeable: bool,
    /// romd mode (meaningful for ROM devices).
    pub romd: bool,
    /// The owner text `info mtree -o` prints after the region (QEMU's words, e.g.
    /// `owner:{dev id=uart0}`), if any; see [`crate::Memory::set_owner`].
    pub owner: Option<String>,
    /// The container it is mapped in.
    pub container: Option<RegionId>,
    /// Subregions in precedence order.
    pub subregions: Vec<RegionId>,
    /// For an alias: its target and offset.
    pub alias: Option<(RegionId, u64)>,
}
