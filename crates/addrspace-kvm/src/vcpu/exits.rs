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
    coalesced: AtomicU64,
    halts: AtomicU64,
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
    /// Coalesced-MMIO (and PIO) ring entries dispatched (drained on every exit and pause).
    pub coalesced: u64,
    /// Exits whose access failed in the address space (a hole, a refused access): the
    /// access is dropped (reads see what the space returned, usually 0), as QEMU does.
    pub failed: u64,
    /// `HLT` exits (the last one ends the loop under the default
    /// [`HaltPolicy::Exit`](super::HaltPolicy::Exit); each is an idle tick under
    /// [`HaltPolicy::Idle`](super::HaltPolicy::Idle)).
    pub halts: u64,
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
            coalesced: get(&self.coalesced),
            halts: get(&self.halts),
        }
    }

    /// Counts an `HLT` exit.
    pub(super) fn halted(&self) {
        bump(&self.halts);
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

/// An exit with its data copied out of the `kvm_run` page, so the coalesced ring can be
/// drained (it needs the fd) before the exit is dispatched.
pub(super) enum Owned {
    MmioRead(u64, usize),
    MmioWrite(u64),
    IoIn(u16, usize),
    IoOut(u16),
}

/// Copies an MMIO/PIO exit's data into `buf` (writes) and describes it; any other exit is
/// handed back.
pub(super) fn own<'a>(exit: VcpuExit<'a>, buf: &mut Vec<u8>) -> Result<Owned, VcpuExit<'a>> {
    buf.clear();
    Ok(match exit {
        VcpuExit::MmioRead(addr, data) => Owned::MmioRead(addr, data.len()),
        VcpuExit::IoIn(port, data) => Owned::IoIn(port, data.len()),
        VcpuExit::MmioWrite(addr, data) => {
            buf.extend_from_slice(data);
            Owned::MmioWrite(addr)
        }
        VcpuExit::IoOut(port, data) => {
            buf.extend_from_slice(data);
            Owned::IoOut(port)
        }
        other => return Err(other),
    })
}

/// Dispatches an owned MMIO/PIO exit: writes from `buf`, reads into `buf` (resized).
/// Returns whether the exit was a read whose data must go back to the guest.
pub(super) fn dispatch_owned(s: &Spaces, counts: &ExitCounts, exit: &Owned, buf: &mut Vec<u8>) -> bool {
    match *exit {
        Owned::MmioRead(addr, len) => {
            buf.resize(len, 0);
            mmio_read(s, counts, addr, buf);
            true
        }
        Owned::IoIn(port, len) => {
            buf.resize(len, 0);
            pio_in(s, counts, port, buf);
            true
        }
        Owned::MmioWrite(addr) => {
            mmio_write(s, counts, addr, buf);
            false
        }
        Owned::IoOut(port) => {
            pio_out(s, counts, port, buf);
            false
        }
    }
}

/// Dispatches one coalesced ring entry (an MMIO write, or a PIO write for coalesced PIO).
pub(super) fn coalesced(s: &Spaces, counts: &ExitCounts, e: &kvm_bindings::kvm_coalesced_mmio) {
    bump(&counts.coalesced);
    let len = (e.len as usize).min(e.data.len());
    let data = &e.data[..len];
    if super::kick::coalesced_is_pio(e) {
        match (u16::try_from(e.phys_addr), &s.io) {
            (Ok(port), Some(io)) => {
                let r = io.write(GuestAddr(port.into()), data, MemTxAttrs::default());
                note(counts, "coalesced pio", e.phys_addr, r.is_ok());
            }
            _ => note(counts, "coalesced pio", e.phys_addr, false),
        }
    } else {
        let r = s.memory.write(GuestAddr(e.phys_addr), data, MemTxAttrs::default());
        note(counts, "coalesced mmio", e.phys_addr, r.is_ok());
    }
}
