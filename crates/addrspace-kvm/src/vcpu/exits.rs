//! Dispatching a vCPU's MMIO and port-I/O exits through its own address spaces.

use std::sync::atomic::{AtomicU64, Ordering};

use addrspace::{AddressSpace, GuestAddr, MemTxAttrs};
use kvm_ioctls::VcpuExit;

/// The spaces one vCPU dispatches through.
pub(super) struct Spaces {
    pub memory: AddressSpace,
    pub io: Option<AddressSpace>,
}

/// Exits a vCPU handled, by kind (live counters).
#[derive(Debug, Default)]
pub(super) struct ExitCounts {
    mmio_reads: AtomicU64,
    mmio_writes: AtomicU64,
    pio_ins: AtomicU64,
    pio_outs: AtomicU64,
    failed: AtomicU64,
}

/// Exits a vCPU handled, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExitStats {
    /// MMIO read exits.
    pub mmio_reads: u64,
    /// MMIO write exits.
    pub mmio_writes: u64,
    /// Port `IN` exits.
    pub pio_ins: u64,
    /// Port `OUT` exits.
    pub pio_outs: u64,
    /// Exits whose access failed in the address space (a hole, a refused access): the
    /// access is dropped (reads see what the space returned, usually 0), as QEMU does.
    pub failed: u64,
}

impl ExitCounts {
    /// The counts now.
    pub(super) fn snapshot(&self) -> ExitStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExitStats {
            mmio_reads: get(&self.mmio_reads),
            mmio_writes: get(&self.mmio_writes),
            pio_ins: get(&self.pio_ins),
            pio_outs: get(&self.pio_outs),
            failed: get(&self.failed),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn note(counts: &ExitCounts, what: &'static str, addr: u64, ok: bool) {
    if !ok {
        bump(&counts.failed);
        tracing::debug!(what, addr, "guest access failed");
    }
}

/// Dispatches an MMIO or port-I/O exit; any other exit is handed back.
pub(super) fn dispatch<'a>(s: &Spaces, counts: &ExitCounts, exit: VcpuExit<'a>) -> Result<(), VcpuExit<'a>> {
    match exit {
        VcpuExit::MmioRead(addr, data) => mmio_read(s, counts, addr, data),
        VcpuExit::MmioWrite(addr, data) => mmio_write(s, counts, addr, data),
        VcpuExit::IoIn(port, data) => pio_in(s, counts, port, data),
        VcpuExit::IoOut(port, data) => pio_out(s, counts, port, data),
        other => return Err(other),
    }
    Ok(())
}

fn mmio_read(s: &Spaces, counts: &ExitCounts, addr: u64, data: &mut [u8]) {
    bump(&counts.mmio_reads);
    let r = s.memory.read(GuestAddr(addr), data, MemTxAttrs::default());
    note(counts, "mmio read", addr, r.is_ok());
}

fn mmio_write(s: &Spaces, counts: &ExitCounts, addr: u64, data: &[u8]) {
    bump(&counts.mmio_writes);
    let r = s.memory.write(GuestAddr(addr), data, MemTxAttrs::default());
    note(counts, "mmio write", addr, r.is_ok());
}

fn pio_in(s: &Spaces, counts: &ExitCounts, port: u16, data: &mut [u8]) {
    bump(&counts.pio_ins);
    match &s.io {
        Some(io) => {
            let r = io.read(GuestAddr(port.into()), data, MemTxAttrs::default());
            note(counts, "port in", port.into(), r.is_ok());
        }
        None => {
            data.fill(0xff);
            note(counts, "port in", port.into(), false);
        }
    }
}

fn pio_out(s: &Spaces, counts: &ExitCounts, port: u16, data: &[u8]) {
    bump(&counts.pio_outs);
    let ok = match &s.io {
        Some(io) => io.write(GuestAddr(port.into()), data, MemTxAttrs::default()).is_ok(),
        None => false,
    };
    note(counts, "port out", port.into(), ok);
}
