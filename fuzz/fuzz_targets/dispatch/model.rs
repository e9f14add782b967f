//! The model: QEMU's access rules byte by byte over shadows of RAM and register files, and the checks after every access.

use super::*;

impl World<'_> {
    pub(crate) fn idx_of(&self, r: &FlatRange) -> usize {
        *self
            .by_id
            .get(&r.region())
            .unwrap_or_else(|| panic!("flat range {r:?} names an unknown region"))
    }

    /// How a read (`write == false`) or write of `r` with `attrs` is handled.
    pub(crate) fn classify(&self, r: &FlatRange, attrs: MemTxAttrs, write: bool) -> Class {
        let idx = self.idx_of(r);
        let kind = self.regions[idx].kind;
        let is_ram = matches!(kind, Kind::Ram | Kind::RamDevice);
        if attrs.memory && !is_ram {
            return Class::NotMemory;
        }
        match kind {
            Kind::Ram | Kind::RamDevice => Class::Ram {
                idx,
                writable: !write || !r.readonly() || attrs.debug,
            },
            Kind::RomDevice => {
                if r.romd() && (!write || attrs.debug) {
                    Class::Ram { idx, writable: true }
                } else {
                    Class::Device(idx)
                }
            }
            Kind::Io => Class::Device(idx),
            Kind::Reservation => Class::Unassigned,
            Kind::Container | Kind::Alias => panic!("flat range {r:?} of a non-terminating region"),
        }
    }

    /// QEMU's `memory_access_size`.
    pub(crate) fn piece_size(rules: &AccessRules, len: usize, off: u64) -> u32 {
        let mut max: u64 = if rules.valid.max == 0 {
            4
        } else {
            u64::from(rules.valid.max)
        };
        if !rules.implementation.unaligned {
            let align = off & off.wrapping_neg();
            if align != 0 && align < max {
                max = align;
            }
        }
        let l = (len as u64).min(max);
        assert!(l >= 1);
        let mut p = 1;
        while p * 2 <= l {
            p *= 2;
        }
        p as u32
    }

    /// One access of `size` bytes to device `idx` at `off`: QEMU's `access_valid` and
    /// `access_with_adjusted_size`, in memory byte order. `data`: the bytes of a write.
    pub(crate) fn model_device(
        &mut self,
        idx: usize,
        off: u64,
        size: u32,
        data: Option<&[u8]>,
        attrs: MemTxAttrs,
        calls: &mut Vec<Call>,
    ) -> ([u8; 8], MemTxResult) {
        let _ = attrs;
        let region = &mut self.regions[idx];
        let dev = region.dev.clone().expect("device region");
        let rules = dev.rules;
        let valid_size =
            rules.valid.max == 0 || (u32::from(rules.valid.min)..=u32::from(rules.valid.max)).contains(&size);
        let aligned = rules.valid.unaligned || off.is_multiple_of(u64::from(size));
        stats::add(&stats::DEVICE_PIECES, 1);
        if !dev_accepts(dev.spec.reject, off, data.is_some()) || !aligned || !valid_size {
            stats::add(&stats::DEVICE_INVALID, 1);
            return ([0; 8], MemTxResult::DECODE_ERROR);
        }
        let imin = u32::from(rules.implementation.min).max(1);
        let imax = if rules.implementation.max == 0 {
            4
        } else {
            u32::from(rules.implementation.max)
        };
        let chunk = size.min(imax).max(imin);
        let mut out = [0u8; 8];
        let mut result = MemTxResult::OK;
        let mut i = 0;
        while i < size {
            let o = off.wrapping_add(u64::from(i));
            if dev_err(dev.spec.err, o) {
                result |= MemTxResult::ERROR;
            }
            match data {
                Some(d) => {
                    let mut c = [0u8; 8];
                    for k in 0..chunk {
                        if i + k < size {
                            c[k as usize] = d[(i + k) as usize];
                        }
                    }
                    let c = &c[..chunk as usize];
                    regs_write(&mut region.regs, o, c);
                    calls.push(Call {
                        dev: idx,
                        write: true,
                        off: o,
                        size: chunk,
                        value: from_bytes(dev.spec.big, c),
                    });
                }
                None => {
                    let b = regs_read(&region.regs, o, chunk);
                    for k in 0..chunk {
                        if i + k < size {
                            out[(i + k) as usize] = b[k as usize];
                        }
                    }
                    calls.push(Call {
                        dev: idx,
                        write: false,
                        off: o,
                        size: chunk,
                        value: 0,
                    });
                }
            }
            i += chunk;
        }
        (out, result)
    }

    /// The byte-slice path, byte by byte: reads (`data == None`) return the expected bytes;
    /// writes update the shadows.
    pub(crate) fn model_bytes(
        &mut self,
        view: &FlatView,
        addr: u64,
        len: usize,
        data: Option<&[u8]>,
        attrs: MemTxAttrs,
    ) -> Expect {
        let write = data.is_some();
        let mut bytes = vec![0u8; if write { 0 } else { len }];
        let mut result = MemTxResult::OK;
        let mut calls = Vec::new();
        let mut pos = 0usize;
        while pos < len {
            let Ok(a) = u64::try_from(u128::from(addr) + pos as u128) else {
                result |= MemTxResult::DECODE_ERROR; // past 2^64: unassigned
                break;
            };
            let Some((r, off)) = lookup(view, a) else {
                stats::add(&stats::HOLE_BYTES, 1);
                result |= MemTxResult::DECODE_ERROR;
                pos += 1;
                continue;
            };
            match self.classify(r, attrs, write) {
                Class::NotMemory => {
                    result |= MemTxResult::ACCESS_ERROR;
                    pos += 1;
                }
                Class::Unassigned => {
                    result |= MemTxResult::DECODE_ERROR;
                    pos += 1;
                }
                Class::Ram { idx, writable } => {
                    let reg = &mut self.regions[idx];
                    let o = usize::try_from(off).ok().filter(|_| u128::from(off) < reg.size);
                    let o = o.unwrap_or_else(|| {
                        panic!(
                            "{r:?}: offset {off:#x} at {a:#x} outside region of size {:#x}",
                            reg.size
                        )
                    });
                    match data {
                        None => {
                            stats::add(&stats::RAM_BYTES_READ, 1);
                            bytes[pos] = reg.shadow[o]
                        }
                        Some(d) if writable => {
                            stats::add(&stats::RAM_BYTES_WRITTEN, 1);
                            reg.shadow[o] = d[pos]
                        }
                        Some(_) => {
                            stats::add(&stats::RO_BYTES_DROPPED, 1);
                            result |= MemTxResult::DECODE_ERROR
                        }
                    }
                    pos += 1;
                }
                Class::Device(idx) => {
                    let rules = self.regions[idx].dev.as_ref().unwrap().rules;
                    let l = Self::piece_size(&rules, len - pos, off);
                    let piece = data.map(|d| &d[pos..pos + l as usize]);
                    let (b, res) = self.model_device(idx, off, l, piece, attrs, &mut calls);
                    if !write {
                        bytes[pos..pos + l as usize].copy_from_slice(&b[..l as usize]);
                    }
                    result |= res;
                    pos += l as usize;
                }
            }
        }
        Expect { bytes, result, calls }
    }

    pub(crate) fn model_load(
        &mut self,
        view: &FlatView,
        addr: u64,
        width: u32,
        big: bool,
        attrs: MemTxAttrs,
    ) -> Expect {
        if let Some((r, off)) = lookup(view, addr) {
            if let Class::Device(idx) = self.classify(r, attrs, false) {
                let mut calls = Vec::new();
                let (b, result) = self.model_device(idx, off, width, None, attrs, &mut calls);
                let v = from_bytes(big, &b[..width as usize]);
                return Expect {
                    bytes: v.to_le_bytes().to_vec(),
                    result,
                    calls,
                };
            }
        }
        let e = self.model_bytes(view, addr, width as usize, None, attrs);
        let v = from_bytes(big, &e.bytes);
        Expect {
            bytes: v.to_le_bytes().to_vec(),
            ..e
        }
    }

    pub(crate) fn model_store(
        &mut self,
        view: &FlatView,
        addr: u64,
        width: u32,
        value: u64,
        big: bool,
        attrs: MemTxAttrs,
    ) -> Expect {
        let data = to_bytes(big, value, width as usize);
        let data = &data[..width as usize];
        if let Some((r, off)) = lookup(view, addr) {
            if let Class::Device(idx) = self.classify(r, attrs, true) {
                let mut calls = Vec::new();
                let (_, result) = self.model_device(idx, off, width, Some(data), attrs, &mut calls);
                return Expect {
                    bytes: Vec::new(),
                    result,
                    calls,
                };
            }
        }
        self.model_bytes(view, addr, width as usize, Some(data), attrs)
    }

    // -----------------------------------------------------------------------------------------
    // Checks
    // -----------------------------------------------------------------------------------------

    /// Structural invariants of a view, and `lookup` against a linear scan at every boundary.
    pub(crate) fn check_view(&mut self, view: &Arc<FlatView>) {
        if self.checked_views.iter().any(|v| Arc::ptr_eq(v, view)) {
            return;
        }
        let ranges = view.ranges();
        for (i, r) in ranges.iter().enumerate() {
            assert!(r.start().0 <= r.last().0, "empty range {r:?}");
            if i > 0 {
                assert!(
                    ranges[i - 1].last().0 < r.start().0,
                    "unsorted/overlapping {:?} {r:?}",
                    ranges[i - 1]
                );
            }
            let idx = self.idx_of(r);
            let reg = &self.regions[idx];
            assert!(
                u128::from(r.offset_in_region().0) + r.size() <= reg.size,
                "{r:?} runs past the end of its region (size {:#x})",
                reg.size
            );
            for a in [
                Some(r.start().0),
                Some(r.last().0),
                r.start().0.checked_sub(1),
                r.last().0.checked_add(1),
            ]
            .into_iter()
            .flatten()
            {
                let naive = ranges.iter().find(|x| x.start().0 <= a && a <= x.last().0);
                let got = lookup(view, a).map(|x| x.0);
                assert!(
                    naive.map(|n| n as *const FlatRange) == got.map(|g| g as *const FlatRange),
                    "lookup({a:#x}) = {got:?}, expected {naive:?}"
                );
            }
        }
        if self.checked_views.len() >= 4 {
            self.checked_views.remove(0);
        }
        self.checked_views.push(view.clone());
    }

    /// Every RAM block equals its shadow, every register file its model, and the device
    /// calls made are exactly the expected ones.
    pub(crate) fn check_state(&mut self, what: &dyn Fn() -> String, expected_calls: &[Call]) {
        let actual: Vec<Call> = std::mem::take(&mut *self.log.lock().unwrap());
        stats::add(&stats::DEVICE_CALLS, actual.len() as u64);
        assert!(
            actual == expected_calls,
            "{}: device calls\n  got      {actual:x?}\n  expected {expected_calls:x?}",
            what()
        );
        for reg in &self.regions {
            if let Some(block) = &reg.block {
                let n = block.len();
                assert!(block.read(0, &mut self.scratch[..n]));
                if self.scratch[..n] != reg.shadow[..] {
                    let i = (0..n).find(|&i| self.scratch[i] != reg.shadow[i]).unwrap();
                    panic!(
                        "{}: RAM of region {:?} (size {:#x}) differs from the model at offset {i:#x}: {:#x} != {:#x}",
                        what(),
                        reg.id,
                        reg.size,
                        self.scratch[i],
                        reg.shadow[i]
                    );
                }
            }
            if let Some(dev) = &reg.dev {
                let regs = dev.regs.lock().unwrap();
                assert!(
                    *regs == reg.regs,
                    "{}: registers of device {:?} differ from the model",
                    what(),
                    reg.id
                );
            }
        }
    }
}
