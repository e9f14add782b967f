//! Where a vCPU starts: x86 real mode, flat segments.

use kvm_bindings::kvm_regs;
use kvm_ioctls::VcpuFd;

use crate::error::{Error, Result};

/// The register state a vCPU starts (or, re-plugged, restarts) from: 16-bit real mode with
/// every segment at base 0 (limit 64 KiB), `RIP` = `ip`, `RFLAGS` = 2 and the general
/// registers given (others 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    /// Instruction pointer (below 64 KiB in real mode with CS base 0).
    pub ip: u64,
    /// Initial `RAX`.
    pub rax: u64,
    /// Initial `RBX`.
    pub rbx: u64,
    /// Initial `RSP`.
    pub rsp: u64,
}

impl Entry {
    /// Real mode at `ip`, all general registers 0.
    pub fn real_mode(ip: u64) -> Entry {
        Entry { ip, ..Entry::default() }
    }

    /// Sets a vCPU fd's registers to this entry (what [`Vcpu::start`](super::Vcpu::start)
    /// does), for code that runs a fd itself.
    pub fn apply(&self, fd: &mut VcpuFd) -> Result<()> {
        set_entry(fd, self)
    }
}

/// Resets `fd`'s segment and general registers to `entry`.
pub(super) fn set_entry(fd: &mut VcpuFd, entry: &Entry) -> Result<()> {
    let mut sregs = fd.get_sregs().map_err(|e| Error::ioctl("KVM_GET_SREGS", e))?;
    for seg in [
        &mut sregs.cs,
        &mut sregs.ds,
        &mut sregs.es,
        &mut sregs.fs,
        &mut sregs.gs,
        &mut sregs.ss,
    ] {
        seg.base = 0;
        seg.selector = 0;
        seg.limit = 0xffff;
    }
    // Real mode: protection and paging off.
    sregs.cr0 &= !0x8000_0001;
    fd.set_sregs(&sregs).map_err(|e| Error::ioctl("KVM_SET_SREGS", e))?;
    let regs = kvm_regs {
        rip: entry.ip,
        rflags: 2,
        rax: entry.rax,
        rbx: entry.rbx,
        rsp: entry.rsp,
        ..kvm_regs::default()
    };
    fd.set_regs(&regs).map_err(|e| Error::ioctl("KVM_SET_REGS", e))
}
