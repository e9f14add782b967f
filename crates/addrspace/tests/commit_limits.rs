//! Commits at their limits, and what the commit property tests do not generate:
//!
//! * a change whose propagation gives up (2^24 alias windows above it) still reaches every
//!   view at the commit, RAM or not;
//! * switching between `CommitMode::Full` and the scoped mode never hands a view to a root it
//!   no longer describes;
//! * random transactions that create and delete regions (ids reused), create and drop address
//!   spaces and switch commit modes inside the transaction, with aliases into ancestors:
//!   after every commit every space shows a fresh render of its root (`SEEDS=N` runs more).

mod common;

use addrspace::{Memory, RegionId, SIZE_2_64};

/// A binary DAG of aliases above `x`: level k holds two aliases of level k-1 side by side, so
/// a change in `x` is carried up 2^levels distinct windows (no cycle, nothing refused).
fn alias_dag(m: &Memory, x: RegionId, levels: u32) {
    let mut below = x;
    let mut size: u128 = 0x1000;
    for k in 0..levels {
        let d = m.container(&format!("dag{k}"), size * 2).unwrap();
        let lo = m.alias(&format!("dag{k}-lo"), below, 0, size).unwrap();
        let hi = m.alias(&format!("dag{k}-hi"), below, 0, size).unwrap();
        m.add_subregion(d, 0, lo).unwrap();
        m.add_subregion(d, size as u64, hi).unwrap();
        below = d;
        size *= 2;
    }
}

/// (Found in review: a propagation that gave up set the flag of global dirty-logging changes,
/// whose commit skips views without RAM that no window names — and it named none.)
#[test]
fn propagation_give_up_leaves_views_without_ram_stale() {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let dev = m.io("dev", 0x1000, std::sync::Arc::new(addrspace::Unassigned)).unwrap();
    m.add_subregion(sys, 0x1000, dev).unwrap();
    // A second device keeps `system` the physical root when `dev` goes.
    let other = m
        .io("other", 0x1000, std::sync::Arc::new(addrspace::Unassigned))
        .unwrap();
    m.add_subregion(sys, 0x8000, other).unwrap();
    let space = m.address_space("memory", sys).unwrap();
    assert_eq!(space.view().ranges().len(), 2);
    // 2^24 windows: past the 2^22 steps a propagation may take. No view sees the DAG.
    alias_dag(&m, dev, 24);
    m.set_enabled(dev, false).unwrap();
    let fresh = m.render(sys).unwrap();
    assert_eq!(fresh.ranges().len(), 1, "a fresh render shows `other` only");
    assert!(
        space.view().ranges().len() == 1,
        "stale view after a commit: {:?}",
        space
            .view()
            .ranges()
            .iter()
            .map(|r| r.name().to_string())
            .collect::<Vec<_>>()
    );
}

/// A view rendered in `CommitMode::Full` is not handed, back in scoped mode, to a root with
/// the sharing signature it had before (found in review: Full mode left the old signature).
#[test]
fn a_view_rendered_in_full_mode_is_not_transferred_by_a_stale_signature() {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let ram = m.ram("ram", 0x10000).unwrap();
    m.add_subregion(sys, 0, ram).unwrap();
    let dev = m.io("dev", 0x1000, std::sync::Arc::new(addrspace::Unassigned)).unwrap();
    m.add_subregion(sys, 0x10_0000, dev).unwrap();
    let smram = m.ram("smram", 0x1000).unwrap();
    // Two structurally identical per-CPU-like roots: an alias of system, an alias of smram.
    let root = |name: &str| {
        let c = m.container(name, SIZE_2_64).unwrap();
        let a = m.alias(&format!("{name}-sys"), sys, 0, SIZE_2_64).unwrap();
        let b = m.alias(&format!("{name}-smram"), smram, 0, 0x1000).unwrap();
        m.add_subregion(c, 0, a).unwrap();
        m.add_subregion_overlap(c, 0x4000, b, 1).unwrap();
        (c, b)
    };
    let (k, kb) = root("k");
    let (n, _) = root("n");
    // `wrapper` simplifies to its only enabled child: `k`, later `n` (mapped, disabled, so that
    // switching touches neither `k` nor `n`'s place).
    let wrapper = m.container("wrapper", SIZE_2_64).unwrap();
    m.add_subregion(wrapper, 0, k).unwrap();
    m.set_enabled(n, false).unwrap();
    m.add_subregion(wrapper, 0, n).unwrap();
    let space = m.address_space("s", wrapper).unwrap();

    m.set_commit_mode(addrspace::CommitMode::Full);
    m.set_address(kb, 0x8000).unwrap(); // `k` no longer looks like `n`
    m.set_commit_mode(addrspace::CommitMode::Scoped);
    {
        let _tx = m.transaction();
        m.remove_subregion(wrapper, k).unwrap();
        m.set_enabled(n, true).unwrap();
    }
    assert_eq!(recs_of(&space.view()), recs_of(&m.render(wrapper).unwrap()));
}

type Rec5 = (u64, u128, String, u64, bool);

fn recs_of(v: &addrspace::FlatView) -> Vec<Rec5> {
    v.ranges()
        .iter()
        .map(|r| {
            (
                r.start().0,
                r.size(),
                r.name().to_string(),
                r.offset_in_region().0,
                r.readonly(),
            )
        })
        .collect()
}

/// Random transactions with what the commit proptest does not generate: regions created,
/// deleted (ids reused) and address spaces created or dropped inside a transaction, commit
/// mode switches. After every commit every space must show a fresh render of its root.
fn fuzz_one(seed: u64, steps: usize) -> Result<(), String> {
    use std::sync::Arc;
    let mut rng = common::Rng(seed | 1);
    let m = Memory::new();
    let mut regs: Vec<RegionId> = Vec::new();
    let mut spaces: Vec<(addrspace::AddressSpace, RegionId)> = Vec::new();
    let mut log: Vec<String> = Vec::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    regs.push(sys);
    spaces.push((m.address_space("memory", sys).unwrap(), sys));
    let sizes = [0x1000u128, 0x2000, 0x4000, 0x8000, 0x1_0000];
    let addrs = [0u64, 0x1000, 0x2000, 0x3000, 0x4000, 0x8000];
    for _ in 0..steps {
        let tx = m.transaction();
        let n_ops = 1 + rng.index(6);
        for _ in 0..n_ops {
            let pick = |rng: &mut common::Rng, regs: &Vec<RegionId>| regs[rng.index(regs.len())];
            let op = rng.index(20);
            let r = pick(&mut rng, &regs);
            let size = sizes[rng.index(sizes.len())];
            let addr = addrs[rng.index(addrs.len())];
            let res: addrspace::Result<()> = match op {
                0 => m.ram(&format!("ram{}", regs.len()), size).map(|id| regs.push(id)),
                1 => m
                    .io(&format!("io{}", regs.len()), size, Arc::new(addrspace::Unassigned))
                    .map(|id| regs.push(id)),
                2 => m.container(&format!("c{}", regs.len()), size).map(|id| regs.push(id)),
                3 => m
                    .alias(&format!("al{}", regs.len()), r, addr, size)
                    .map(|id| regs.push(id)),
                4..=6 => {
                    let c = if rng.index(3) == 0 { sys } else { pick(&mut rng, &regs) };
                    let prio = rng.index(3) as i32 - 1;
                    m.add_subregion_overlap(c, addr, r, prio)
                }
                7 => match m.region_info(r).ok().and_then(|i| i.container) {
                    Some(c) => m.remove_subregion(c, r),
                    None => Ok(()),
                },
                8 => m.set_address(r, addr),
                9 => m.set_priority(r, rng.index(3) as i32 - 1),
                10 => m.set_enabled(r, rng.index(3) != 0),
                11 => m.set_size(r, size),
                12 => m.set_alias_offset(r, addr),
                13 => m.set_readonly(r, rng.index(2) == 0),
                14 if r != sys => {
                    let res = m.delete_region(r);
                    if res.is_ok() {
                        regs.retain(|&x| x != r);
                    }
                    res
                }
                15 | 16 => m
                    .address_space(&format!("as{}", spaces.len()), r)
                    .map(|s| spaces.push((s, r))),
                17 => {
                    if !spaces.is_empty() {
                        let i = rng.index(spaces.len());
                        spaces.remove(i);
                    }
                    Ok(())
                }
                14 => Ok(()),
                18 => {
                    // An alias of `r`'s container (an ancestor) mapped into it.
                    match m.region_info(r).ok().and_then(|i| i.container) {
                        Some(c) => m.alias(&format!("anc{}", regs.len()), c, addr, size).and_then(|a| {
                            regs.push(a);
                            m.add_subregion_overlap(c, addr + 0x1000, a, -1)
                        }),
                        None => Ok(()),
                    }
                }
                _ => {
                    let mode = if rng.index(2) == 0 {
                        addrspace::CommitMode::Full
                    } else {
                        addrspace::CommitMode::Scoped
                    };
                    m.set_commit_mode(mode);
                    Ok(())
                }
            };
            log.push(format!(
                "op {op} r {r:?} size {size:#x} addr {addr:#x} -> {:?}",
                res.as_ref().err().map(|e| e.to_string())
            ));
        }
        drop(tx);
        log.push("-- commit".into());
        for (s, root) in &spaces {
            let fresh = recs_of(&m.render(*root).unwrap());
            let shown = recs_of(&s.view());
            if fresh != shown {
                return Err(format!(
                    "seed {seed}: space {} (root {root:?}) is stale\nshown: {shown:?}\nfresh: {fresh:?}\n{}",
                    s.name(),
                    log.join("\n")
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn random_transactions_with_creation_deletion_and_spaces_inside_them() {
    let n: u64 = std::env::var("SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    for seed in 0..n {
        if let Err(e) = fuzz_one(seed * 0x9E37_79B9 + 7, 40) {
            panic!("{e}");
        }
    }
}
