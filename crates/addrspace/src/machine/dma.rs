//! A DMA engine: the device pattern behind every address space that is not a CPU's.
//!
//! As in QEMU, a DMA-capable device takes a region as a property (what it can reach) and
//! creates its own address space over it; `cpu_address_space_init` is the CPU's convenience
//! form of the same thing. This engine copies `len` bytes from `src` to `dst` through its own
//! space when its `go` register is written. Plugging it maps its registers on a bus and
//! creates the space; dropping the [`DmaDevice`] (unplug) unmaps and deletes the registers
//! and destroys the space. The device's ops hold only a weak handle to the space, so the
//! views (which hold the ops) never keep the device alive.
//!
//! Registers (8 bytes each): `0x00` source, `0x08` destination, `0x10` length, `0x18` go
//! (write any value), `0x20` status (read: the `MemTxResult` bits of the last copy, 0 = OK).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::base::access::{AccessRules, MemTxAttrs, MemTxResult, RegionOps, SizeRule};
use crate::base::addr::GuestAddr;
use crate::base::error::Result;
use crate::machine::address_space::{AddressSpace, WeakAddressSpace};
use crate::machine::memory::Memory;
use crate::model::region::RegionId;

/// Size of the register block.
pub const DMA_REGS_SIZE: u128 = 0x100;

/// Largest copy done in one go (longer requests are refused with an error status).
pub const DMA_MAX_LEN: u64 = 1 << 20;

#[derive(Default)]
struct Regs {
    src: u64,
    dst: u64,
    len: u64,
    status: u64,
}

/// The engine's register block (its `RegionOps`).
struct Engine {
    space: WeakAddressSpace,
    regs: Mutex<Regs>,
}

impl Engine {
    fn run(&self, attrs: MemTxAttrs) -> MemTxResult {
        let (src, dst, len) = {
            let r = self.regs.lock();
            (r.src, r.dst, r.len)
        };
        let Some(space) = self.space.upgrade() else {
            return MemTxResult::DECODE_ERROR;
        };
        if len > DMA_MAX_LEN {
            return MemTxResult::ERROR;
        }
        let mut buf = vec![0u8; len as usize];
        let attrs = MemTxAttrs { debug: false, ..attrs };
        space.read(GuestAddr(src), &mut buf, attrs) | space.write(GuestAddr(dst), &buf, attrs)
    }
}

impl RegionOps for Engine {
    fn read(&self, offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let r = self.regs.lock();
        let v = match offset {
            0x00 => r.src,
            0x08 => r.dst,
            0x10 => r.len,
            0x20 => r.status,
            _ => 0,
        };
        (v, MemTxResult::OK)
    }

    fn write(&self, offset: u64, value: u64, _size: u32, attrs: MemTxAttrs) -> MemTxResult {
        match offset {
            0x00 => self.regs.lock().src = value,
            0x08 => self.regs.lock().dst = value,
            0x10 => self.regs.lock().len = value,
            0x18 => {
                let status = self.run(attrs);
                self.regs.lock().status = u64::from(status.bits());
            }
            _ => {}
        }
        MemTxResult::OK
    }

    fn rules(&self) -> AccessRules {
        AccessRules {
            valid: SizeRule {
                min: 8,
                max: 8,
                unaligned: false,
            },
            ..AccessRules::default()
        }
    }
}

/// A plugged DMA engine. Dropping it unplugs it.
pub struct DmaDevice {
    memory: Memory,
    // Drop order: the space first, then the registers.
    space: AddressSpace,
    regs: RegionId,
}

impl DmaDevice {
    /// Plugs an engine called `name`: its own address space (named `name`) over `reach`,
    /// and its registers mapped in `bus` at `addr`.
    ///
    /// ```
    /// use addrspace::dma::DmaDevice;
    /// use addrspace::{Endianness, GuestAddr, MemTxAttrs, Memory};
    ///
    /// let mem = Memory::new();
    /// let system = mem.container("system", 1 << 64)?;
    /// let ram = mem.ram("ram", 0x10000)?;
    /// mem.add_subregion(system, 0, ram)?;
    /// let cpu = mem.address_space("cpu-memory-0", system)?;
    /// let dma = DmaDevice::plug(&mem, "dma0", system, system, 0x1000_0000)?;
    /// let a = MemTxAttrs::default();
    /// cpu.write(GuestAddr(0x100), b"hello", a);
    /// for (reg, v) in [(0x00, 0x100u64), (0x08, 0x200), (0x10, 5), (0x18, 1)] {
    ///     cpu.store(GuestAddr(0x1000_0000 + reg), v, Endianness::Little, a);
    /// }
    /// let mut out = [0u8; 5];
    /// cpu.read(GuestAddr(0x200), &mut out, a);
    /// assert_eq!(&out, b"hello");
    /// drop(dma); // unplug: registers unmapped and deleted, space destroyed
    /// assert_eq!(mem.stats().address_spaces, 1);
    /// # Ok::<(), addrspace::Error>(())
    /// ```
    pub fn plug(memory: &Memory, name: &str, reach: RegionId, bus: RegionId, addr: u64) -> Result<DmaDevice> {
        let space = memory.address_space(name, reach)?;
        let engine = Arc::new(Engine {
            space: space.downgrade(),
            regs: Mutex::new(Regs::default()),
        });
        let regs = memory.io(&format!("{name}-regs"), DMA_REGS_SIZE, engine)?;
        let dev = DmaDevice {
            memory: memory.clone(),
            space,
            regs,
        };
        memory.add_subregion(bus, addr, regs)?;
        Ok(dev)
    }

    /// The engine's own address space.
    pub fn address_space(&self) -> &AddressSpace {
        &self.space
    }

    /// The register region.
    pub fn regs(&self) -> RegionId {
        self.regs
    }

    /// Unplugs the engine (same as dropping it).
    pub fn unplug(self) {}
}

impl Drop for DmaDevice {
    fn drop(&mut self) {
        if let Err(e) = self.memory.delete_regions(&[self.regs]) {
            tracing::warn!(error = %e, "DMA engine registers outlived the device");
        }
    }
}

impl std::fmt::Debug for DmaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaDevice").field("space", &self.space.name()).finish()
    }
}
