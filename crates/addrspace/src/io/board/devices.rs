//! Binding a VMM's own device models to the `io` regions and ROM devices a board declares.
//!
//! A board file says *where* a device is (`[[region]]` of type `io` or `rom-device`) and may
//! name *what* it is (`ops = "pl011"`); the VMM that loads it supplies the [`RegionOps`]
//! objects, through a [`Loader`]: by region id ([`Loader::bind`]) or from a resolver that
//! sees every device region the board declares ([`Loader::resolver`]). The ops are attached
//! when the region is created, so the first view already dispatches to them.
//!
//! What a region gets, first match wins:
//! 1. the ops bound to its id with [`Loader::bind`];
//! 2. what the resolver returns for it;
//! 3. the built-in behaviour its `ops` names (`unassigned`, the default, or `open-bus`);
//! 4. otherwise its `ops` names a device model nobody provided: loading fails at that line
//!    ([`crate::LoadError::Board`]), unless [`Loader::placeholders`] is set (tools that only print
//!    a machine), in which case the region decodes nothing, like `unassigned`.
//!
//! A binding for an id the board does not declare as an `io` or `rom-device` region is an
//! error too (a typo would otherwise leave the device silently unattached).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::base::access::RegionOps;
use crate::io::board::cpus::Report as _;
use crate::io::load_error::LoadError;

type Result<T> = std::result::Result<T, LoadError>;
use crate::machine::assembly::Machine;
use crate::machine::memory::Memory;

/// The kind of device region a [`DeviceRequest`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceKind {
    /// An `io` region (MMIO or port I/O).
    Io,
    /// A `rom-device` region (its ops take writes, and reads outside romd mode).
    RomDevice,
}

/// One device region of a board, as the resolver of a [`Loader`] sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DeviceRequest<'a> {
    /// The region's id in the board file (its `id`, or its `name` when it has none).
    pub id: &'a str,
    /// The region's name (as `info mtree` prints it).
    pub name: &'a str,
    /// The region's size in bytes (up to 2^64).
    pub size: u128,
    /// `io` or `rom-device`.
    pub kind: DeviceKind,
    /// The board's `ops` for the region, if it gives one: a built-in behaviour
    /// (`unassigned`, `open-bus`) or the name of a device model the VMM is asked to provide.
    pub ops: Option<&'a str>,
    /// The memory system being built: a device that needs guest memory keeps
    /// [`Memory::downgrade`] (a strong handle inside a region's ops is a reference cycle).
    pub memory: &'a Memory,
}

type Resolver<'r> = Box<dyn FnMut(&DeviceRequest<'_>) -> Option<Arc<dyn RegionOps>> + 'r>;

/// Loads board files, binding the VMM's device models to the device regions they declare.
///
/// What an `io` or `rom-device` region gets, first match wins:
/// 1. the ops bound to its id with [`Loader::bind`];
/// 2. what the [`Loader::resolver`] returns for it;
/// 3. the built-in behaviour its `ops` names (`unassigned`, the default, or `open-bus`);
/// 4. otherwise its `ops` names a device model nobody provided: loading fails at that line,
///    unless [`Loader::placeholders`] is set.
///
/// A binding for an id the board does not declare as a device region fails the load too.
/// [`crate::board::load_str`] and [`crate::board::load_file`] are `Loader::new()` with
/// nothing bound.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use addrspace::board::Loader;
/// use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, RegionOps};
///
/// /// A device that counts its accesses.
/// #[derive(Default)]
/// struct Counter(AtomicU64);
/// impl RegionOps for Counter {
///     fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
///         (self.0.fetch_add(1, Ordering::Relaxed), MemTxResult::OK)
///     }
///     fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         MemTxResult::OK
///     }
/// }
///
/// let board = r#"
/// [[region]]
/// name = "system"
/// type = "container"
/// size = "2^64"
/// subregions = [{ region = "uart", addr = "0x9000000" }]
///
/// [[region]]
/// name = "uart"
/// type = "io"
/// size = "4K"
/// ops = "pl011"
///
/// [[address-space]]
/// name = "memory"
/// root = "system"
/// "#;
/// let uart = Arc::new(Counter::default());
/// let machine = Loader::new().bind("uart", uart.clone()).load_str(board, "tiny.toml")?;
/// let space = machine.address_space("memory").unwrap();
/// let result = space.store(GuestAddr(0x900_0000), 0x41_u32, Endianness::Little, MemTxAttrs::default());
/// assert_eq!((result, uart.0.load(Ordering::Relaxed)), (MemTxResult::OK, 1));
///
/// // Nobody provides `pl011`: an error at the `ops` line.
/// let err = addrspace::board::load_str(board, "tiny.toml").unwrap_err();
/// assert!(err.to_string().starts_with("tiny.toml:12:"), "{err}");
/// # Ok::<(), addrspace::LoadError>(())
/// ```
#[derive(Default)]
pub struct Loader<'r> {
    pub(super) bound: HashMap<String, Arc<dyn RegionOps>>,
    pub(super) resolver: Option<Resolver<'r>>,
    pub(super) placeholders: bool,
}

impl fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.bound.keys().collect();
        ids.sort();
        f.debug_struct("Loader")
            .field("bound", &ids)
            .field("resolver", &self.resolver.is_some())
            .field("placeholders", &self.placeholders)
            .finish()
    }
}

impl<'r> Loader<'r> {
    /// A loader with nothing bound: built-in behaviours only.
    pub fn new() -> Loader<'r> {
        Loader::default()
    }

    /// Attaches `ops` to the `io` or `rom-device` region with board id `id` (replacing what
    /// its `ops` says). Loading fails if the board has no such device region.
    pub fn bind(mut self, id: impl Into<String>, ops: Arc<dyn RegionOps>) -> Loader<'r> {
        self.bound.insert(id.into(), ops);
        self
    }

    /// Asks `resolver` for the ops of every device region not bound by id, in file order;
    /// `None` leaves the region to its `ops` (see [`Loader`]).
    pub fn resolver(
        mut self,
        resolver: impl FnMut(&DeviceRequest<'_>) -> Option<Arc<dyn RegionOps>> + 'r,
    ) -> Loader<'r> {
        self.resolver = Some(Box::new(resolver));
        self
    }

    /// With `on`, a device model nobody provides decodes nothing (like `unassigned`) instead
    /// of failing the load: for tools that print or convert a machine without running it.
    /// [`Machine::devices`] still lists it, so an export writes its `ops` back.
    pub fn placeholders(mut self, on: bool) -> Loader<'r> {
        self.placeholders = on;
        self
    }

    /// Loads a board description from text; `file` names it in errors.
    pub fn load_str(mut self, text: &str, file: &str) -> Result<Machine> {
        super::load_with(text, file, &mut self)
    }

    /// Loads a board file from disk (see [`crate::board::load_file`]).
    pub fn load_file(mut self, path: &Path) -> Result<Machine> {
        let (text, file) = super::read_file(path)?;
        super::load_with(&text, &file, &mut self)
    }
}

/// The ops of every device region of `desc` (by index; `None` for other regions), and the
/// `(id, ops name)` of those whose `ops` names a device model rather than a built-in.
#[allow(clippy::type_complexity)]
pub(super) fn resolve(
    desc: &super::BoardDesc,
    cx: &super::Ctx<'_>,
    loader: &mut Loader<'_>,
    memory: &Memory,
) -> Result<(Vec<Option<Arc<dyn RegionOps>>>, Vec<(String, String)>)> {
    use super::RegionType;
    let mut unused: Vec<&String> = loader
        .bound
        .keys()
        .filter(|id| !desc.regions.iter().any(|r| r.key().get_ref() == *id))
        .collect();
    unused.sort();
    if let Some(id) = unused.first() {
        return Err(cx.err(
            0..0,
            format!("a device model is bound to `{id}`, but the board declares no region with that id"),
        ));
    }
    let mut ops = Vec::with_capacity(desc.regions.len());
    let mut devices = Vec::new();
    for r in &desc.regions {
        let kind = match r.ty {
            RegionType::Io => DeviceKind::Io,
            RegionType::RomDevice => DeviceKind::RomDevice,
            _ => {
                ops.push(None);
                continue;
            }
        };
        let id = r.key().get_ref();
        let named = r.ops.as_ref().map(|o| o.get_ref().as_str());
        let builtin = named.map_or(Some(super::OpsKind::Unassigned), super::OpsKind::from_name);
        if let (Some(name), None) = (named, builtin) {
            devices.push((id.clone(), name.to_string()));
        }
        let mut found = loader.bound.get(id).cloned();
        if found.is_none() {
            if let Some(resolve) = loader.resolver.as_mut() {
                found = resolve(&DeviceRequest {
                    id,
                    name: r.name.get_ref(),
                    size: cx.size(&r.size)?,
                    kind,
                    ops: named,
                    memory,
                });
            }
        }
        let chosen = match (found, builtin) {
            (Some(o), _) => o,
            (None, Some(b)) => super::ops_for(b),
            (None, None) if loader.placeholders => super::ops_for(super::OpsKind::Unassigned),
            (None, None) => {
                let span = r.ops.as_ref().expect("named").span();
                return Err(cx.err(
                    span,
                    format!(
                        "region `{id}` asks for device model `{}`, which nobody provided: bind it with \
                         `board::Loader::bind(\"{id}\", ops)` or a resolver (built-ins: `unassigned`, `open-bus`)",
                        named.unwrap_or_default()
                    ),
                ));
            }
        };
        ops.push(Some(chosen));
    }
    Ok((ops, devices))
}
