//! Building the world from the input and running its operations.

use super::*;

pub(crate) fn width(w: u8) -> u32 {
    [1, 2, 4, 8][usize::from(w % 4)]
}

pub(crate) fn build<'m>(mem: &'m Memory, input: &Input) -> World<'m> {
    let root = mem.container("root", SIZE_2_64).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut w = World {
        mem,
        root,
        regions: Vec::new(),
        by_id: HashMap::new(),
        spaces: Vec::new(),
        space_roots: Vec::new(),
        accessors: Vec::new(),
        log,
        scratch: Vec::new(),
        checked_views: Vec::new(),
    };
    let tx = input.setup_in_tx.then(|| mem.transaction());
    for spec in input.regions.iter().take(MAX_REGIONS) {
        let i = w.regions.len();
        let dev = |spec: &DevSpec, size: u128, idx: usize| {
            Arc::new(RegDev {
                index: idx,
                spec: *spec,
                rules: spec.rules(),
                regs: Mutex::new(vec![0; size.min(REGS_MAX) as usize]),
                log: w.log.clone(),
                remap_target: OnceLock::new(),
            })
        };
        let (id, kind, size, dev) = match &spec.kind {
            KindSpec::Ram(s) => (mem.ram("ram", s.get()), Kind::Ram, s.get(), None),
            KindSpec::Rom(s) => (mem.rom("rom", s.get()), Kind::Ram, s.get(), None),
            KindSpec::RamDevice(s) => (mem.ram_device("ramd", s.get()), Kind::RamDevice, s.get(), None),
            KindSpec::RomDevice(s, romd, d) => {
                let dev = dev(d, s.get(), i);
                let id = mem.rom_device("romdev", s.get(), dev.clone());
                if let Ok(id) = id {
                    mem.set_romd(id, *romd).unwrap();
                }
                (id, Kind::RomDevice, s.get(), Some(dev))
            }
            KindSpec::Io(s, d) => {
                let dev = dev(d, s.get(), i);
                (mem.io("io", s.get(), dev.clone()), Kind::Io, s.get(), Some(dev))
            }
            KindSpec::Reservation(s) => (mem.reservation("resv", s.get()), Kind::Reservation, s.get(), None),
            KindSpec::Container(s) => (mem.container("cont", s.get()), Kind::Container, s.get(), None),
            KindSpec::Alias { target, offset, size } => {
                let t = usize::from(*target) % (i + 1);
                let t = if t == i { root } else { w.regions[t].id };
                (
                    mem.alias("alias", t, offset.get(), size.get()),
                    Kind::Alias,
                    size.get(),
                    None,
                )
            }
        };
        if let Some(dev) = dev
            .as_ref()
            .filter(|d| !(rule_ok(d.rules.valid) && rule_ok(d.rules.implementation)))
        {
            match id {
                Err(addrspace::Error::InvalidAccessRules { .. }) => {
                    stats::add(&stats::RULES_REFUSED, 1);
                    continue;
                }
                other => panic!("{:?} created with {:?}: {other:?}", spec.kind, dev.rules),
            }
        }
        let id = id.unwrap_or_else(|e| panic!("creating {:?}: {e}", spec.kind));
        let block = mem.leaf(id).unwrap().and_then(|l| l.backend().ram().cloned());
        let shadow = vec![0u8; block.as_ref().map_or(0, |b| b.len())];
        let regs = vec![0u8; if dev.is_some() { size.min(REGS_MAX) as usize } else { 0 }];
        if spec.readonly {
            mem.set_readonly(id, true).unwrap();
        }
        if spec.disabled {
            mem.set_enabled(id, false).unwrap();
        }
        if let Some(m) = &spec.map {
            let p = usize::from(m.parent) % (i + 1);
            let parent = if p == i { root } else { w.regions[p].id };
            let _ = mem.add_subregion_overlap(parent, m.addr.get(), id, prio(m.prio));
        }
        w.by_id.insert(id, i);
        w.regions.push(Region {
            id,
            kind,
            size,
            block,
            shadow,
            dev,
            regs,
        });
    }
    drop(tx);
    for reg in &w.regions {
        if let Some(dev) = &reg.dev {
            if let Some((sel, _)) = dev.spec.remap {
                let _ = dev.remap_target.set((mem.downgrade(), w.region(sel)));
            }
        }
    }
    let max_block = w.regions.iter().map(|r| r.shadow.len()).max().unwrap_or(0);
    w.scratch = vec![0; max_block];
    w.spaces.push(Some(mem.address_space("memory", root).unwrap()));
    w.space_roots.push(root);
    // A second space over the first container, when there is one (exercises root
    // simplification and shared views).
    if let Some(c) = w.regions.iter().find(|r| r.kind == Kind::Container) {
        w.spaces.push(Some(mem.address_space("dma", c.id).unwrap()));
        w.space_roots.push(c.id);
    }
    w.accessors = w.spaces.iter().map(|s| s.as_ref().unwrap().accessor()).collect();
    w
}

pub(crate) fn mutated<T>(r: addrspace::Result<T>) {
    match r {
        Ok(_) => stats::add(&stats::MUTATIONS_OK, 1),
        Err(_) => stats::add(&stats::MUTATIONS_ERR, 1),
    }
}

pub(crate) fn run(input: &Input) {
    stats::add(&stats::INPUTS, 1);
    let mem = Memory::new();
    let mut w = build(&mem, input);
    let mut txs: Vec<Transaction<'_>> = Vec::new();
    for op in input.ops.iter().take(MAX_OPS) {
        match *op {
            Op::Read { at, len, attrs, how } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.read_op(how, a, len.get(), attrs.get());
            }
            Op::Write {
                at,
                len,
                seed,
                attrs,
                how,
                readback,
            } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                let data: Vec<u8> = (0..len.get())
                    .map(|i| (usize::from(seed) + i * 131 + (i >> 8)) as u8)
                    .collect();
                w.write_op(how, a, &data, attrs.get());
                if readback {
                    let mut ra = attrs.get();
                    ra.memory = false;
                    w.read_op(how, a, data.len(), ra);
                }
            }
            Op::Load {
                at,
                width: wd,
                big,
                attrs,
                how,
            } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.load_op(how, a, width(wd), big, attrs.get());
            }
            Op::Store {
                at,
                width: wd,
                big,
                value,
                attrs,
                how,
            } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.store_op(how, a, width(wd), value, big, attrs.get());
            }
            Op::SetAddress { r, addr } => {
                mutated(w.mem.set_address(w.region(r), addr.get()));
            }
            Op::SetEnabled { r, on } => {
                mutated(w.mem.set_enabled(w.region(r), on));
            }
            Op::Remove { r } => {
                let id = w.region(r);
                if let Ok(info) = w.mem.region_info(id) {
                    if let Some(c) = info.container {
                        w.mem.remove_subregion(c, id).unwrap();
                    }
                }
            }
            Op::Add {
                r,
                parent,
                addr,
                prio: p,
            } => {
                mutated(
                    w.mem
                        .add_subregion_overlap(w.region(parent), addr.get(), w.region(r), prio(p)),
                );
            }
            Op::SetRomd { r, on } => {
                mutated(w.mem.set_romd(w.region(r), on));
            }
            Op::SetReadonly { r, on } => {
                mutated(w.mem.set_readonly(w.region(r), on));
            }
            Op::SetPriority { r, prio: p } => {
                mutated(w.mem.set_priority(w.region(r), prio(p)));
            }
            Op::SetAliasOffset { r, offset } => {
                mutated(w.mem.set_alias_offset(w.region(r), offset.get()));
            }
            Op::SetSize { r, size } => {
                let id = w.region(r);
                let size = size.get();
                if w.mem.set_size(id, size).is_ok() {
                    if let Some(&i) = w.by_id.get(&id) {
                        let reg = &mut w.regions[i];
                        reg.size = reg.size.max(size);
                    }
                }
            }
            Op::Delete { r } => {
                mutated(w.mem.delete_region(w.region(r)));
            }
            Op::BeginTx => {
                if txs.len() < 4 {
                    txs.push(mem.transaction());
                }
            }
            Op::EndTx => {
                txs.pop();
            }
            Op::NewAccessor { space } => {
                let s = usize::from(space) % w.spaces.len();
                if let Some(sp) = &w.spaces[s] {
                    w.accessors[s] = sp.accessor();
                }
            }
            Op::Lookup { at, how } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.lookup_op(how, a);
            }
            Op::DestroySpace => {
                // The last space only; its accessor lives on and must see the empty view.
                if w.spaces.len() > 1 {
                    w.spaces[1] = None;
                }
            }
            Op::RecreateSpace => {
                if w.spaces.len() > 1 && w.spaces[1].is_none() {
                    if let Ok(sp) = w.mem.address_space("dma", w.space_roots[1]) {
                        // The old accessor stays on the old (unpublished) cell.
                        w.accessors[1] = sp.accessor();
                        w.spaces[1] = Some(sp);
                    }
                }
            }
        }
    }
    drop(txs);
    // Final sweep: everything the model knows is still there, through the final view.
    w.check_state(&|| "final".to_string(), &[]);
    if stats::INPUTS
        .load(std::sync::atomic::Ordering::Relaxed)
        .is_multiple_of(1000)
    {
        stats::print();
    }
}
