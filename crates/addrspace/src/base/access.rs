//! The device side of a memory region: the [`RegionOps`] trait, access-size rules,
//! transaction attributes and results.
//!
//! An MMIO region (and a ROM device outside romd mode) hands guest accesses to an object
//! implementing [`RegionOps`]. Like QEMU's `MemoryRegionOps`, the object declares two sets of
//! size rules: what the *guest* may do ([`AccessRules::valid`]) and what its callbacks can
//! handle ([`AccessRules::implementation`]); the dispatcher splits, widens and byte-swaps
//! accesses between the two. These types live below the region graph so that every layer
//! (rendering, dispatch, accelerators) shares one vocabulary.

use std::fmt;

/// Attributes that travel with one memory transaction (QEMU's `MemTxAttrs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MemTxAttrs {
    /// Secure world (Arm TrustZone) or SMM (x86).
    pub secure: bool,
    /// Unprivileged access.
    pub user: bool,
    /// Debugger or loader access: may write ROM, bypasses some checks.
    pub debug: bool,
    /// Only normal memory may be the target.
    pub memory: bool,
    /// Bus requester id (PCI BDF or similar).
    pub requester_id: u16,
}

impl MemTxAttrs {
    /// Attributes of a debug access (gdbstub, image loader).
    pub const DEBUG: MemTxAttrs = MemTxAttrs {
        secure: false,
        user: false,
        debug: true,
        memory: false,
        requester_id: 0,
    };
}

/// Outcome of one memory transaction: a bit set like QEMU's `MemTxResult`.
///
/// Ignoring one is a warning: a failed guest access (a hole, a refused write) must be
/// handled or deliberately dropped with `let _ =`.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use addrspace::{GuestAddr, Memory, MemTxAttrs};
/// let mem = Memory::new();
/// let root = mem.container("system", 1 << 64).unwrap();
/// let space = mem.address_space("memory", root).unwrap();
/// space.write(GuestAddr(0), &[1], MemTxAttrs::default()); // error: unused `MemTxResult`
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[must_use = "a MemTxResult tells whether the guest access succeeded: check it (or `let _ =` it on purpose)"]
pub struct MemTxResult(u8);

impl MemTxResult {
    /// The access completed.
    pub const OK: MemTxResult = MemTxResult(0);
    /// The device reported an error.
    pub const ERROR: MemTxResult = MemTxResult(1);
    /// Nothing decodes this address, or the access size/alignment is invalid there.
    pub const DECODE_ERROR: MemTxResult = MemTxResult(2);
    /// The access was refused (re-entrancy guard, permission, `attrs.memory`).
    pub const ACCESS_ERROR: MemTxResult = MemTxResult(4);

    /// Whether no error bit is set.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The raw bit set.
    pub fn bits(self) -> u8 {
        self.0
    }
}

impl std::ops::BitOr for MemTxResult {
    type Output = MemTxResult;
    fn bitor(self, rhs: MemTxResult) -> MemTxResult {
        MemTxResult(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for MemTxResult {
    fn bitor_assign(&mut self, rhs: MemTxResult) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for MemTxResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("OK");
        }
        let names = [(1, "ERROR"), (2, "DECODE_ERROR"), (4, "ACCESS_ERROR")];
        let mut first = true;
        for (bit, name) in names {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Byte order of a device's registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Endianness {
    /// Little endian (the default).
    #[default]
    Little,
    /// Big endian.
    Big,
}

/// Access sizes (in bytes, powers of two from 1 to 8) and alignment accepted on one side of
/// the dispatcher. A `max` of 0 means "no limit declared" (QEMU's legacy meaning); a `min` of
/// 0 means 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SizeRule {
    /// Smallest access size.
    pub min: u8,
    /// Largest access size; 0 means any size is allowed.
    pub max: u8,
    /// Whether accesses not aligned to their size are allowed.
    pub unaligned: bool,
}

impl SizeRule {
    /// Any size from 1 to 8 bytes, aligned or not.
    pub const ANY: SizeRule = SizeRule {
        min: 1,
        max: 8,
        unaligned: true,
    };

    /// Sizes `min..=max`, aligned only.
    pub const fn aligned(min: u8, max: u8) -> SizeRule {
        SizeRule {
            min,
            max,
            unaligned: false,
        }
    }
}

impl SizeRule {
    /// Whether `size` is a size the dispatcher can carry: 0 (undeclared) or 1, 2, 4, 8.
    fn size_ok(size: u8) -> bool {
        matches!(size, 0 | 1 | 2 | 4 | 8)
    }

    /// The first problem with this rule, as (field, why); `side` is `valid` or
    /// `implementation`.
    fn problem(self, side: &'static Side) -> Option<(&'static str, String)> {
        if !Self::size_ok(self.min) {
            return Some((
                side.min,
                format!("= {}: sizes are 0 (undeclared) or 1, 2, 4, 8 bytes", self.min),
            ));
        }
        if !Self::size_ok(self.max) {
            return Some((
                side.max,
                format!("= {}: sizes are 0 (undeclared) or 1, 2, 4, 8 bytes", self.max),
            ));
        }
        if self.max != 0 && self.min > self.max {
            return Some((
                side.name,
                format!("min {} is above max {}: no access could be made", self.min, self.max),
            ));
        }
        None
    }
}

/// Field names of one side of [`AccessRules`], for error messages.
struct Side {
    name: &'static str,
    min: &'static str,
    max: &'static str,
}

const VALID: Side = Side {
    name: "valid",
    min: "valid.min",
    max: "valid.max",
};
const IMPLEMENTATION: Side = Side {
    name: "implementation",
    min: "implementation.min",
    max: "implementation.max",
};

/// Checks a device's rules when its region `name` is created: every size is 0 (undeclared)
/// or a power of two from 1 to 8 (what one load or store carries), and a declared maximum
/// is not below the minimum. Rules outside that would make the dispatcher slice past an
/// 8-byte value or call the device with sizes it never declared.
pub(crate) fn check_rules(name: &str, rules: &AccessRules) -> crate::base::error::Result<()> {
    let problem = rules
        .valid
        .problem(&VALID)
        .or_else(|| rules.implementation.problem(&IMPLEMENTATION));
    match problem {
        None => Ok(()),
        Some((field, why)) => Err(crate::base::error::Error::InvalidAccessRules {
            name: name.to_string(),
            field,
            why,
        }),
    }
}

/// The size rules of a device: what the guest may do and what the callbacks implement.
///
/// Checked when the region is created ([`crate::Memory::io`], [`crate::Memory::rom_device`]):
/// each size must be 0 (undeclared) or 1, 2, 4 or 8, and a declared `max` must not be below
/// `min`; other rules are refused with [`crate::base::error::Error::InvalidAccessRules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessRules {
    /// Accesses the guest may make; others fail with [`MemTxResult::DECODE_ERROR`].
    pub valid: SizeRule,
    /// Accesses the callbacks handle; others are split or widened by the dispatcher.
    pub implementation: SizeRule,
    /// Register byte order.
    pub endianness: Endianness,
    /// Let an access to this device run while another access to it is in progress on the
    /// same thread (a handler that touches its own registers, directly or by DMA). Off by
    /// default: such nested accesses are refused with [`MemTxResult::ACCESS_ERROR`], like
    /// QEMU's re-entrancy guard.
    pub allow_reentrancy: bool,
}

impl Default for AccessRules {
    /// QEMU's defaults: any valid size (legacy `max = 0`), callbacks of 1 to 4 bytes.
    fn default() -> Self {
        AccessRules {
            valid: SizeRule {
                min: 1,
                max: 0,
                unaligned: false,
            },
            implementation: SizeRule {
                min: 1,
                max: 4,
                unaligned: false,
            },
            endianness: Endianness::Little,
            allow_reentrancy: false,
        }
    }
}

/// Callbacks of an MMIO region or ROM device: QEMU's `MemoryRegionOps` as a trait.
///
/// Offsets are relative to the start of the region. Implementations must be `Send + Sync`
/// because vCPU threads call them concurrently; they are free to use interior mutability.
///
/// **Ownership.** Ops objects live inside the flat views of the memory system. A device that
/// needs the memory system (to remap its BARs) or an address space (to do DMA) must hold a
/// [`crate::WeakMemory`] or [`crate::WeakAddressSpace`] and upgrade it when it acts — never a
/// strong [`crate::Memory`] or [`crate::AddressSpace`], and never a stored
/// [`crate::Accessor`] (which caches a view that may contain the device itself): those are
/// reference cycles, and the device and everything it can see would never be freed.
///
/// ```
/// use addrspace::{AccessRules, MemTxAttrs, MemTxResult, RegionOps};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// A single 32-bit scratch register.
/// struct Scratch(AtomicU64);
///
/// impl RegionOps for Scratch {
///     fn read(&self, _offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
///         (self.0.load(Ordering::Relaxed), MemTxResult::OK)
///     }
///     fn write(&self, _offset: u64, value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
///         self.0.store(value, Ordering::Relaxed);
///         MemTxResult::OK
///     }
/// }
///
/// let s = Scratch(AtomicU64::new(7));
/// assert_eq!(s.read(0, 4, MemTxAttrs::default()).0, 7);
/// assert_eq!(s.rules(), AccessRules::default());
/// ```
pub trait RegionOps: Send + Sync {
    /// Reads `size` bytes at `offset`; returns the value (in the device's byte order) and
    /// the result.
    fn read(&self, offset: u64, size: u32, attrs: MemTxAttrs) -> (u64, MemTxResult);

    /// Writes the low `size` bytes of `value` at `offset`.
    fn write(&self, offset: u64, value: u64, size: u32, attrs: MemTxAttrs) -> MemTxResult;

    /// Size, alignment and byte-order rules. Called when the region is created; the
    /// result is fixed for the region's life.
    fn rules(&self) -> AccessRules {
        AccessRules::default()
    }

    /// The name of a built-in behaviour that board files can write as `ops = "NAME"`
    /// (`unassigned`, `open-bus`); `None` (the default) for device models of your own.
    fn describe(&self) -> Option<&'static str> {
        None
    }

    /// Identity of the device for the re-entrancy guard: accesses to any region whose ops
    /// return the same key count as the same device. Defaults to this object's address; a
    /// device with several ops objects returns one shared key (e.g. its state's address).
    fn device_key(&self) -> usize {
        self as *const Self as *const () as usize
    }

    /// Device-specific veto on an access (QEMU's `valid.accepts`); `true` by default.
    fn accepts(&self, _offset: u64, _size: u32, _is_write: bool, _attrs: MemTxAttrs) -> bool {
        true
    }
}

/// Ops that decode nothing: every access fails with [`MemTxResult::DECODE_ERROR`] and reads
/// as zero (QEMU's `unassigned_mem_ops`). Used for reservations and imported regions.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unassigned;

impl RegionOps for Unassigned {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::DECODE_ERROR)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::DECODE_ERROR
    }
    fn accepts(&self, _: u64, _: u32, _: bool, _: MemTxAttrs) -> bool {
        false
    }
    fn describe(&self) -> Option<&'static str> {
        Some("unassigned")
    }
}

/// Ops of an empty I/O port range: reads return all ones, writes are ignored, and both
/// succeed (QEMU's `unassigned_io_ops`, the background of the x86 `io` space).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenBus;

impl RegionOps for OpenBus {
    fn read(&self, _: u64, size: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        let v = if size >= 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
        (v, MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
    fn describe(&self) -> Option<&'static str> {
        Some("open-bus")
    }
}
