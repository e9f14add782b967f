//! The operations: lookups, reads, writes, loads and stores through every path, each checked against the model.

use super::*;

impl World<'_> {
    // -----------------------------------------------------------------------------------------
    // Operations
    // -----------------------------------------------------------------------------------------

    pub(crate) fn addr(&self, view: &FlatView, at: AddrPick) -> u64 {
        let ranges = view.ranges();
        match at {
            AddrPick::RangeStart(i, d) if !ranges.is_empty() => ranges[usize::from(i) % ranges.len()]
                .start()
                .0
                .wrapping_add(d as i64 as u64),
            AddrPick::RangeLast(i, d) if !ranges.is_empty() => ranges[usize::from(i) % ranges.len()]
                .last()
                .0
                .wrapping_add(d as i64 as u64),
            AddrPick::RangeStart(_, d) | AddrPick::RangeLast(_, d) => d as i64 as u64,
            AddrPick::NearTop(n) => u64::MAX - u64::from(n),
            AddrPick::Abs(a) => a.get(),
        }
    }

    /// The space an access through `how` uses (a destroyed space falls back to space 0).
    pub(crate) fn space(&self, s: u8) -> &AddressSpace {
        let s = usize::from(s) % self.spaces.len();
        self.spaces[s].as_ref().or(self.spaces[0].as_ref()).unwrap()
    }

    pub(crate) fn accessor(&mut self, s: u8) -> &mut Accessor {
        let n = self.accessors.len();
        &mut self.accessors[usize::from(s) % n]
    }

    /// The view the access through `how` will use.
    pub(crate) fn view_for(&mut self, how: How) -> Arc<FlatView> {
        let view = match how {
            How::Space(s) => self.space(s).view(),
            How::Accessor(s) => {
                let i = usize::from(s) % self.spaces.len();
                let av = self.accessor(s).view().clone();
                match &self.spaces[i] {
                    Some(space) => {
                        assert!(
                            Arc::ptr_eq(&av, &space.view()),
                            "accessor view is not the published view"
                        )
                    }
                    None => assert!(
                        av.ranges().is_empty() && av.root().is_none(),
                        "accessor of a destroyed space still sees {av:?}"
                    ),
                }
                av
            }
        };
        self.check_view(&view);
        view
    }

    /// `AddressSpace::lookup` and `Accessor::lookup` against the model's lookup.
    pub(crate) fn lookup_op(&mut self, how: How, addr: u64) {
        let view = self.view_for(how);
        let want = lookup(&view, addr).map(|(r, off)| (r.clone(), off));
        let got = match how {
            How::Space(s) => self.space(s).lookup(GuestAddr(addr)).map(|(r, off)| (r, off.0)),
            How::Accessor(s) => self
                .accessor(s)
                .lookup(GuestAddr(addr))
                .map(|(r, off)| (r.clone(), off.0)),
        };
        assert!(
            got == want,
            "lookup({addr:#x}) via {how:?} = {got:?}, expected {want:?}"
        );
    }

    pub(crate) fn do_read(&mut self, how: How, addr: u64, buf: &mut [u8], attrs: MemTxAttrs) -> MemTxResult {
        match how {
            How::Space(s) => self.space(s).read(GuestAddr(addr), buf, attrs),
            How::Accessor(s) => self.accessor(s).read(GuestAddr(addr), buf, attrs),
        }
    }

    pub(crate) fn do_write(&mut self, how: How, addr: u64, buf: &[u8], attrs: MemTxAttrs) -> MemTxResult {
        match how {
            How::Space(s) => self.space(s).write(GuestAddr(addr), buf, attrs),
            How::Accessor(s) => self.accessor(s).write(GuestAddr(addr), buf, attrs),
        }
    }

    pub(crate) fn do_load(
        &mut self,
        how: How,
        addr: u64,
        width: u32,
        big: bool,
        attrs: MemTxAttrs,
    ) -> (u64, MemTxResult) {
        let order = if big { Endianness::Big } else { Endianness::Little };
        let a = GuestAddr(addr);
        macro_rules! go {
            ($t:ty) => {{
                let (v, r) = match how {
                    How::Space(s) => self.space(s).load::<$t>(a, order, attrs),
                    How::Accessor(s) => self.accessor(s).load::<$t>(a, order, attrs),
                };
                (u64::from(v), r)
            }};
        }
        match width {
            1 => go!(u8),
            2 => go!(u16),
            4 => go!(u32),
            _ => go!(u64),
        }
    }

    pub(crate) fn do_store(
        &mut self,
        how: How,
        addr: u64,
        width: u32,
        value: u64,
        big: bool,
        attrs: MemTxAttrs,
    ) -> MemTxResult {
        let order = if big { Endianness::Big } else { Endianness::Little };
        let a = GuestAddr(addr);
        macro_rules! go {
            ($t:ty) => {{
                let v = value as $t;
                match how {
                    How::Space(s) => self.space(s).store::<$t>(a, v, order, attrs),
                    How::Accessor(s) => self.accessor(s).store::<$t>(a, v, order, attrs),
                }
            }};
        }
        match width {
            1 => go!(u8),
            2 => go!(u16),
            4 => go!(u32),
            _ => go!(u64),
        }
    }

    pub(crate) fn read_op(&mut self, how: How, addr: u64, len: usize, attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let e = self.model_bytes(&view, addr, len, None, attrs);
        let mut buf = vec![0xa5u8; len];
        let res = self.do_read(how, addr, &mut buf, attrs);
        let what = || format!("read({addr:#x}, len {len}, {attrs:?}) via {how:?}");
        assert!(res == e.result, "{}: result {res:?}, expected {:?}", what(), e.result);
        if buf != e.bytes {
            let i = (0..len).find(|&i| buf[i] != e.bytes[i]).unwrap();
            panic!(
                "{}: byte {i} (addr {:#x}) is {:#x}, expected {:#x}\nview: {view:?}",
                what(),
                u128::from(addr) + i as u128,
                buf[i],
                e.bytes[i]
            );
        }
        self.check_state(&what, &e.calls);
    }

    pub(crate) fn write_op(&mut self, how: How, addr: u64, data: &[u8], attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let e = self.model_bytes(&view, addr, data.len(), Some(data), attrs);
        let res = self.do_write(how, addr, data, attrs);
        let len = data.len();
        let what = || format!("write({addr:#x}, len {len}, {attrs:?}) via {how:?}\nview: {view:?}");
        assert!(res == e.result, "{}: result {res:?}, expected {:?}", what(), e.result);
        self.check_state(&what, &e.calls);
    }

    pub(crate) fn load_op(&mut self, how: How, addr: u64, width: u32, big: bool, attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let e = self.model_load(&view, addr, width, big, attrs);
        let (v, res) = self.do_load(how, addr, width, big, attrs);
        let what = || {
            format!(
                "load{}({addr:#x}, big {big}, {attrs:?}) via {how:?}\nview: {view:?}",
                width * 8
            )
        };
        let ev = u64::from_le_bytes(e.bytes[..8].try_into().unwrap());
        assert!(
            (v, res) == (ev, e.result),
            "{}: got ({v:#x}, {res:?}), expected ({ev:#x}, {:?})",
            what(),
            e.result
        );
        self.check_state(&what, &e.calls);
    }

    pub(crate) fn store_op(&mut self, how: How, addr: u64, width: u32, value: u64, big: bool, attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let value = if width == 8 {
            value
        } else {
            value & ((1u64 << (8 * width)) - 1)
        };
        let e = self.model_store(&view, addr, width, value, big, attrs);
        let res = self.do_store(how, addr, width, value, big, attrs);
        let what = || {
            format!(
                "store{}({addr:#x}, {value:#x}, big {big}, {attrs:?}) via {how:?}\nview: {view:?}",
                width * 8
            )
        };
        assert!(res == e.result, "{}: result {res:?}, expected {:?}", what(), e.result);
        self.check_state(&what, &e.calls);
    }

    pub(crate) fn region(&self, r: u8) -> RegionId {
        // One past the last region is the root.
        let n = self.regions.len() + 1;
        let i = usize::from(r) % n;
        if i == self.regions.len() {
            self.root
        } else {
            self.regions[i].id
        }
    }
}
