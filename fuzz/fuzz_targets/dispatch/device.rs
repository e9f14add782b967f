//! The device: a byte-addressed register file in its declared byte order.

use super::*;

// The device: a byte-addressed register file in its declared byte order
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) dev: usize,
    pub(crate) write: bool,
    pub(crate) off: u64,
    pub(crate) size: u32,
    pub(crate) value: u64,
}

pub(crate) fn from_bytes(big: bool, b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (k, &x) in b.iter().enumerate() {
        let sh = if big { 8 * (b.len() - 1 - k) } else { 8 * k };
        v |= u64::from(x) << sh;
    }
    v
}

pub(crate) fn to_bytes(big: bool, v: u64, n: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (k, o) in out.iter_mut().enumerate().take(n) {
        let sh = if big { 8 * (n - 1 - k) } else { 8 * k };
        *o = (v >> sh) as u8;
    }
    out
}

pub(crate) fn reg_index(regs: &[u8], off: u64, k: u32) -> Option<usize> {
    let o = usize::try_from(off.checked_add(u64::from(k))?).ok()?;
    (o < regs.len()).then_some(o)
}

pub(crate) fn regs_read(regs: &[u8], off: u64, size: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    for k in 0..size.min(8) {
        out[k as usize] = reg_index(regs, off, k).map_or(0, |i| regs[i]);
    }
    out
}

pub(crate) fn regs_write(regs: &mut [u8], off: u64, bytes: &[u8]) {
    for (k, &b) in bytes.iter().enumerate() {
        if let Some(i) = reg_index(regs, off, k as u32) {
            regs[i] = b;
        }
    }
}

pub(crate) fn dev_accepts(reject: Option<u8>, off: u64, is_write: bool) -> bool {
    match reject {
        Some(r) => !(off & 0xf == u64::from(r & 0xf) && is_write == (r & 0x10 != 0)),
        None => true,
    }
}

pub(crate) fn dev_err(err: Option<u8>, off: u64) -> bool {
    err.is_some_and(|e| off & 0x3f == u64::from(e & 0x3f))
}

pub(crate) struct RegDev {
    pub(crate) index: usize,
    pub(crate) spec: DevSpec,
    pub(crate) rules: AccessRules,
    pub(crate) regs: Mutex<Vec<u8>>,
    pub(crate) log: Arc<Mutex<Vec<Call>>>,
    /// Memory (weak: the device lives in it) and the region a `remap` write toggles.
    pub(crate) remap_target: OnceLock<(WeakMemory, RegionId)>,
}

impl RegDev {
    pub(crate) fn check_size(&self, size: u32) {
        assert!(
            matches!(size, 1 | 2 | 4 | 8),
            "device {} called with size {size}",
            self.index
        );
    }
}

impl RegionOps for RegDev {
    fn read(&self, off: u64, size: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.check_size(size);
        self.log.lock().unwrap().push(Call {
            dev: self.index,
            write: false,
            off,
            size,
            value: 0,
        });
        let bytes = regs_read(&self.regs.lock().unwrap(), off, size);
        let v = from_bytes(self.spec.big, &bytes[..size as usize]);
        let res = if dev_err(self.spec.err, off) {
            MemTxResult::ERROR
        } else {
            MemTxResult::OK
        };
        (v, res)
    }

    fn write(&self, off: u64, value: u64, size: u32, _: MemTxAttrs) -> MemTxResult {
        self.check_size(size);
        assert!(
            size == 8 || value >> (8 * size) == 0,
            "device {} write of size {size} with value {value:#x} wider than the access",
            self.index
        );
        self.log.lock().unwrap().push(Call {
            dev: self.index,
            write: true,
            off,
            size,
            value,
        });
        let bytes = to_bytes(self.spec.big, value, size as usize);
        regs_write(&mut self.regs.lock().unwrap(), off, &bytes[..size as usize]);
        if let (Some((_, trigger)), Some((mem, target))) = (self.spec.remap, self.remap_target.get()) {
            if off & 0x3f == u64::from(trigger & 0x3f) {
                if let Some(mem) = mem.upgrade() {
                    if let Ok(info) = mem.region_info(*target) {
                        let _ = mem.set_enabled(*target, !info.enabled);
                        stats::add(&stats::REMAPS, 1);
                    }
                }
            }
        }
        if dev_err(self.spec.err, off) {
            MemTxResult::ERROR
        } else {
            MemTxResult::OK
        }
    }

    fn rules(&self) -> AccessRules {
        self.rules
    }

    fn accepts(&self, off: u64, _size: u32, is_write: bool, _: MemTxAttrs) -> bool {
        dev_accepts(self.spec.reject, off, is_write)
    }
}
