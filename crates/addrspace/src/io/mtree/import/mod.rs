//! Importing a QEMU `info mtree -D` dump into a region graph with its address spaces.
//!
//! The text loses some facts; the rules of `mtree-format.md` ("Importing an `info mtree -D`
//! dump") recover them, and a [`Hints`] file supplies the rest:
//!
//! 1. Hierarchy by indentation; a child's address is its start minus its parent's.
//! 2. Identity: every `address-space:` group is its own root object; a block root is the
//!    same object as the first nested line (anywhere else) with the same name, relative
//!    address and subtree; a section with no nested twin is the group root with the same
//!    name, address and subtree, or else an unmapped region of its own.
//! 3. Alias targets: the `memory-region:` section of that name (same type word preferred).
//! 4. Precedence among equal-priority overlapping siblings: at the same address the one
//!    printed first wins; otherwise the smaller one; equal sizes, the one printed first.
//! 5. `i/o` lines with children are pure containers and without children MMIO regions,
//!    unless the hints say otherwise.
//! 6. Read-only from the `rom` type word or the hints; non-volatile from `nv-`.
//!
//! Address-space creation order (the order of ` AS` lines in `info mtree -f`) is not in the
//! dump either: `memory` and `I/O` come first (QEMU creates them before anything else), then
//! the rest in dump order, unless the hints give the order.
//!
//! Rules 5 and 6 are guesses; [`import_dump_with_report`] says which regions they decided,
//! unless the hints settle them. `info mtree -D -o` dumps (with owners) import like plain
//! `-D` dumps, each region keeping its owner text; `info mtree` without `-D` and `info mtree -f` are refused with a message
//! saying why. Everything is linear or O(n log n) in the size of the dump: [`plan_dump`] is
//! the importer's own work, [`DumpPlan::build`] the calls on [`crate::Memory`].

mod guess;
mod identity;
mod parse;
mod plan;
mod precedence;

use serde::Deserialize;

pub use guess::{Guess, GuessKind};
pub use plan::DumpPlan;

use crate::io::load_error::LoadError;

type Result<T> = std::result::Result<T, LoadError>;
use crate::machine::assembly::Machine;

/// What a dump cannot say, by region or address-space name (the `--hints` TOML file).
/// Read it with [`Hints::from_toml`] (or any serde format: a key given, even as an empty list,
/// settles its guess), or build it in code and [`settle`](Hints::settle) what you checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "HintsFile")]
#[non_exhaustive]
pub struct Hints {
    /// `i/o` regions with children that have ops and fill their own gaps (x86 `io`).
    pub mmio_containers: Vec<String>,
    /// `i/o` regions without children that are pure containers (render nothing).
    pub pure_containers: Vec<String>,
    /// Regions or aliases that are read-only though the dump cannot show it.
    pub readonly: Vec<String>,
    /// Address-space creation order, by name; unnamed spaces follow in the default order.
    pub address_space_order: Vec<String>,
    /// The machine has no disabled region, so a dump that shows none is complete (without
    /// this, such a dump might be `info mtree` without `-D`, which leaves them out).
    pub no_disabled_regions: bool,
    /// Keys the hints file gave, even as empty lists ("none"): their guesses are settled.
    given: Vec<GuessKind>,
}

/// The hints file as written: which keys it gives.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HintsFile {
    mmio_containers: Option<Vec<String>>,
    pure_containers: Option<Vec<String>>,
    readonly: Option<Vec<String>>,
    #[serde(default)]
    address_space_order: Vec<String>,
    #[serde(default)]
    no_disabled_regions: bool,
}

impl From<HintsFile> for Hints {
    fn from(raw: HintsFile) -> Hints {
        let mut given = Vec::new();
        let mut list = |v: Option<Vec<String>>, kind: GuessKind| {
            if v.is_some() {
                given.push(kind);
            }
            v.unwrap_or_default()
        };
        Hints {
            mmio_containers: list(raw.mmio_containers, GuessKind::PureContainers),
            pure_containers: list(raw.pure_containers, GuessKind::MmioRegions),
            readonly: list(raw.readonly, GuessKind::WritableAliases),
            address_space_order: raw.address_space_order,
            no_disabled_regions: raw.no_disabled_regions,
            given,
        }
    }
}

impl Hints {
    /// Parses a hints file; `file` names it in errors. A key given as an empty list
    /// (`readonly = []`) says "none": the import no longer reports that guess.
    pub fn from_toml(text: &str, file: &str) -> Result<Hints> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| crate::io::board::line_col(text, s.start))
                .unwrap_or((1, 1));
            LoadError::board(file, line, column, e.message().to_string(), None)
        })
    }

    /// Says that a kind of guess has been checked: what its list holds is all there is, even
    /// if it is empty (as a key given in a hints file does).
    pub fn settle(&mut self, kind: GuessKind) {
        if !self.given.contains(&kind) {
            self.given.push(kind);
        }
    }

    /// Whether these hints settle a kind of guess: the file gave its key, or the list is
    /// not empty (for [`GuessKind::NoDisabledRegions`]: `no_disabled_regions` is true).
    pub fn settles(&self, kind: GuessKind) -> bool {
        let list = match kind {
            GuessKind::PureContainers => &self.mmio_containers,
            GuessKind::MmioRegions => &self.pure_containers,
            GuessKind::WritableAliases => &self.readonly,
            GuessKind::NoDisabledRegions => return self.no_disabled_regions,
        };
        self.given.contains(&kind) || !list.is_empty()
    }
}

/// Parses and resolves a dump without building anything: all of the importer's own work.
/// `file` names the dump in error messages.
pub fn plan_dump(text: &str, file: &str, hints: &Hints) -> Result<DumpPlan> {
    let mut d = parse::parse(text, file)?;
    if d.blocks.iter().all(|b| b.spaces.is_empty()) {
        return Err(d.err(1, "no `address-space:` block found"));
    }
    identity::signatures(&mut d);
    let canon = identity::identities(&d)?;
    plan::plan(&d, &canon, hints)
}

/// Imports an `info mtree -D` dump (`-o` accepted), and says what it had to guess that the
/// hints did not settle. `file` names the dump in error messages.
///
/// ```
/// use addrspace::mtree::{self, GuessKind, Hints};
///
/// let dump = "address-space: I/O\n  0000000000000000-000000000000ffff (prio 0, i/o): io\n    0000000000000060-0000000000000060 (prio 0, i/o): kbd\n\n";
/// let (_machine, guesses) = mtree::import_dump_with_report(dump, "dump.txt", &Hints::default())?;
/// assert_eq!(guesses[0].kind, GuessKind::PureContainers);
/// assert_eq!(guesses[0].names, ["io"]); // with ops, `io` would fill its gaps: a hint says so
///
/// // `io` fills its gaps, `kbd` is MMIO, and this machine has nothing disabled.
/// let hints = Hints::from_toml(
///     "mmio_containers = [\"io\"]\npure_containers = []\nno_disabled_regions = true",
///     "hints.toml",
/// )?;
/// let (_machine, guesses) = mtree::import_dump_with_report(dump, "dump.txt", &hints)?;
/// assert!(guesses.is_empty());
/// # Ok::<(), addrspace::LoadError>(())
/// ```
pub fn import_dump_with_report(text: &str, file: &str, hints: &Hints) -> Result<(Machine, Vec<Guess>)> {
    let plan = plan_dump(text, file, hints)?;
    let machine = plan.build()?;
    Ok((machine, plan.guesses().to_vec()))
}

/// Imports an `info mtree -D` dump (`-o` accepted). `file` names the dump in error messages.
///
/// ```
/// use addrspace::mtree::{self, Hints};
///
/// let dump = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    0000000000000000-0000000000000fff (prio 0, ram): ram\n\n";
/// let machine = mtree::import_dump(dump, "dump.txt", &Hints::default())?;
/// assert_eq!(mtree::print_tree(&machine.memory, &Default::default()), dump);
/// # Ok::<(), addrspace::LoadError>(())
/// ```
pub fn import_dump(text: &str, file: &str, hints: &Hints) -> Result<Machine> {
    plan_dump(text, file, hints)?.build()
}
