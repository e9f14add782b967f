//! The demo board's devices (`boards/kvm-demo.toml`): the device models its regions name by
//! `ops`, bound when the board loads, and the guest programs the demo loads into RAM and ROM.
//! Shared by `addrspace run` (the fixed demo) and the monitored machine (`--qmp`, `--monitor`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use addrspace::board::Loader;
use addrspace::{GuestAddr, Machine, MemTxAttrs, MemTxResult, RegionId, RegionOps, WeakMemory};
use addrspace_kvm::guest::DemoLayout;
use addrspace_kvm::vcpu::{Hotplug, SpaceIndices};
use addrspace_kvm::{Kvm, MemSlots, Vm};

use crate::run::RunError;

/// The demo guest's memory layout (matches `boards/kvm-demo.toml`).
pub(crate) const LAYOUT: DemoLayout = DemoLayout {
    msg: 0x2000,
    len: MESSAGE.len() as u16,
    uart: 0xa000,
    romdev: 0x9010,
    romd_ctl: 0xa100,
    bar_reg: 0xa200,
    bar_new: 0xd000,
    report: 0x80,
};
pub(crate) const MESSAGE: &[u8] = b"Hello from a KVM guest on addrspace!\n";
pub(crate) const BOOT_AT: u64 = 0x1000;
/// The second vCPU runs from the ROM.
pub(crate) const AP_AT: u16 = 0x8000;
pub(crate) const AP_MSG_AT: u16 = 0x8100;
pub(crate) const AP_MESSAGE: &[u8] = b"cpu1 ok\n";
/// What the ROM device holds at `romdev` (romd mode) and what its model answers (romd off).
pub(crate) const ROM_BYTE: u8 = 0xf1;
pub(crate) const DEVICE_BYTE: u8 = 0xd5;

/// How many bytes of UART output are kept (the oldest half goes when it is full).
const UART_KEEP: usize = 64 * 1024;

/// The heartbeat port: counts the guest's writes (a running guest writes it at every tick).
#[derive(Default)]
pub(crate) struct Heartbeat(AtomicU64);

impl RegionOps for Heartbeat {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (self.0.load(Ordering::Relaxed), MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        MemTxResult::OK
    }
}

/// The UART: bytes written to offset 0, collected.
#[derive(Default)]
pub(crate) struct Uart(Mutex<Vec<u8>>);

impl Uart {
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl RegionOps for Uart {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, offset: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        if offset == 0 {
            let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
            // A guest that runs for days must not grow the host: keep the newest bytes.
            if out.len() >= UART_KEEP {
                out.drain(..UART_KEEP / 2);
            }
            out.push(value as u8);
        }
        MemTxResult::OK
    }
}

/// A device acting on one region of the memory it lives in (known once the board is built).
#[derive(Default)]
struct Target(OnceLock<(WeakMemory, RegionId)>);

impl Target {
    fn act(&self, f: impl FnOnce(&addrspace::Memory, RegionId) -> addrspace::Result<()>) -> MemTxResult {
        let Some((weak, id)) = self.0.get() else {
            return MemTxResult::DECODE_ERROR;
        };
        let Some(mem) = weak.upgrade() else {
            return MemTxResult::DECODE_ERROR;
        };
        match f(&mem, *id) {
            Ok(()) => MemTxResult::OK,
            Err(e) => {
                tracing::warn!(error = %e, "demo device action failed");
                MemTxResult::ERROR
            }
        }
    }
}

/// The ROM device's control register: a write of 0 leaves romd mode, anything else enters it.
#[derive(Default)]
struct RomdCtl(Target);

impl RegionOps for RomdCtl {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, _: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.0.act(|mem, flash| mem.set_romd(flash, value != 0))
    }
}

/// The config device: a write to offset 0 moves the BAR to that address (a topology change
/// from a device callback, committed when the callback returns).
#[derive(Default)]
struct PciConfig(Target);

impl RegionOps for PciConfig {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, offset: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        if offset != 0 {
            return MemTxResult::OK;
        }
        self.0.act(|mem, bar| mem.set_address(bar, value))
    }
}

/// A device whose every register reads one value (the ROM device out of romd mode).
struct Constant(u8);

impl RegionOps for Constant {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (self.0.into(), MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

/// The BAR: remembers the last byte written (and where), reads it back.
#[derive(Default)]
pub(crate) struct Bar {
    last: AtomicU8,
    pub(crate) writes: Mutex<Vec<(u64, u8)>>,
}

impl RegionOps for Bar {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (self.last.load(Ordering::Relaxed).into(), MemTxResult::OK)
    }
    fn write(&self, offset: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.last.store(value as u8, Ordering::Relaxed);
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((offset, value as u8));
        MemTxResult::OK
    }
}

pub(crate) struct Devices {
    pub(crate) uart: Arc<Uart>,
    romd_ctl: Arc<RomdCtl>,
    pci: Arc<PciConfig>,
    pub(crate) bar: Arc<Bar>,
    pub(crate) report: Arc<Uart>,
    heartbeat: Arc<Heartbeat>,
}

impl Devices {
    /// Heartbeat-port writes so far.
    pub(crate) fn heartbeats(&self) -> u64 {
        self.heartbeat.0.load(Ordering::Relaxed)
    }
}

/// Loads the board, binding the demo's device models by their `ops` names.
pub(crate) fn load(path: &Path) -> Result<(Machine, Devices), RunError> {
    let d = Devices {
        uart: Arc::default(),
        romd_ctl: Arc::default(),
        pci: Arc::default(),
        bar: Arc::default(),
        report: Arc::default(),
        heartbeat: Arc::default(),
    };
    let machine = Loader::new()
        .resolver(|req| -> Option<Arc<dyn RegionOps>> {
            match req.ops? {
                "uart" => Some(d.uart.clone()),
                "romd-ctl" => Some(d.romd_ctl.clone()),
                "pci-config" => Some(d.pci.clone()),
                "bar" => Some(d.bar.clone()),
                "flash" => Some(Arc::new(Constant(DEVICE_BYTE))),
                "report" => Some(Arc::new(Report(d.report.clone()))),
                "heartbeat" => Some(d.heartbeat.clone()),
                _ => None,
            }
        })
        .load_file(path)?;
    let region = |key: &str| {
        machine
            .region(key)
            .ok_or_else(|| RunError::Failed(format!("{}: the demo needs a region `{key}`", path.display())))
    };
    let weak = machine.memory.downgrade();
    let _ = d.romd_ctl.0 .0.set((weak.clone(), region("flash")?));
    let _ = d.pci.0 .0.set((weak, region("bar0")?));
    Ok((machine, d))
}

/// The report port: every byte written, collected (any offset).
pub(crate) struct Report(Arc<Uart>);

impl RegionOps for Report {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, _: u64, value: u64, size: u32, attrs: MemTxAttrs) -> MemTxResult {
        self.0.write(0, value, size, attrs)
    }
}

pub(crate) fn write_debug(m: &Machine, at: u64, bytes: &[u8]) -> Result<(), RunError> {
    let space = m
        .address_space("memory")
        .ok_or_else(|| RunError::Failed("the board has no address space `memory`".into()))?;
    let r = space.write(GuestAddr(at), bytes, MemTxAttrs::DEBUG);
    if r.is_ok() {
        Ok(())
    } else {
        Err(RunError::Failed(format!(
            "loading {} bytes at {at:#x}: {r:?}",
            bytes.len()
        )))
    }
}

/// Opens `/dev/kvm`; "no usable KVM" becomes [`RunError::NoKvm`] (exit status 3).
pub(crate) fn open_kvm() -> Result<Kvm, RunError> {
    match Kvm::open() {
        Ok(k) => Ok(k),
        Err(e) if e.is_unavailable() => Err(RunError::NoKvm(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// A loaded board on a KVM VM.
pub(crate) struct OnKvm {
    pub vm: Vm,
    /// The `memory` space's memslots.
    pub slots: Arc<MemSlots>,
    /// The board's `cpus` cluster, its slot updates fenced against `KVM_RUN`.
    pub cpus: Hotplug,
}

/// Attaches the board's `memory` and `I/O` spaces to a new VM and takes its `cpus` cluster
/// for hot-plug (the one path `addrspace run` and the monitored machine share).
pub(crate) fn attach(kvm: &Kvm, machine: &mut Machine) -> Result<OnKvm, RunError> {
    let vm = Vm::new(kvm)?;
    let (Some(system), Some(io)) = (
        machine.address_space("memory").cloned(),
        machine.address_space("I/O").cloned(),
    ) else {
        return Err(RunError::Failed(
            "the board needs address spaces `memory` and `I/O`".into(),
        ));
    };
    let slots = vm.attach_memory(&machine.memory, &system)?;
    vm.attach_io(&machine.memory, &io)?;
    let Some(k) = machine.clusters.iter().position(|c| c.name() == "cpus") else {
        return Err(RunError::Failed("the board needs a cluster `cpus`".into()));
    };
    let cpus = Hotplug::new(vm.fd(), machine.clusters.remove(k), SpaceIndices::default());
    // Slot updates that replace a slot hold the vCPUs out of KVM_RUN (QEMU's ioctl inhibit).
    slots.set_fence(Some(cpus.fence()));
    Ok(OnKvm { vm, slots, cpus })
}
