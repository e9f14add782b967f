//! Property 3, `mtree_import_print_is_stable`: a random machine printed with `info mtree -D`,
//! imported and printed again gives the same `-D` and `-f` text (in `mtree::canonical`
//! form), provided the machine stays inside what a dump can express (see `Spec3`). Its
//! changes include the ancestor aliases of `Op::Ancestor`: a dump shows such an alias as any
//! other, `@` its ancestor, and the importer must rebuild the cycle (or refuse it as the
//! library refused it).

use addrspace::mtree::{self, FlatOptions, Hints, TreeOptions};
use addrspace::SIZE_2_64;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use crate::model::{Kind, TestResult, World};
use crate::strategies::{build, op_s, placed_make_s, Make, Op, Placed};
use crate::world::Expect;

/// A random machine restricted to what an `info mtree -D` dump (plus hints) can express:
///
/// * every region has a unique name, so the hints (which are by name) are unambiguous;
/// * no non-alias region of size 0: QEMU prints sizes 0 and 1 alike (`X-X`) and the importer
///   reads that as 1 unless the line is an alias (and no size 1 aliases, for the same reason:
///   the size generators never produce 1);
/// * `i/o`-printed regions with children that fill their gaps (io, reservations, ROM devices
///   out of romd mode) are listed in `hints.mmio_containers`, and empty containers in
///   `hints.pure_containers`: a dump prints both as `i/o`, and the importer's default is the
///   opposite;
/// * read-only regions are listed in `hints.readonly`: only RAM shows read-only (`rom`); an
///   alias, container or MMIO region prints its (target's) own type word;
/// * no unmergeable flags (not printed, and they change merging in `info mtree -f`);
/// * equal-priority overlapping siblings are at the same address, or the newer one is strictly
///   smaller (importer rule 4: a dump does not show recency, so the smaller one is taken to
///   win), see `World::recency_expressible`; no resizes, which could break that afterwards;
/// * address-space names are unique and their creation order is given in
///   `hints.address_space_order` (`info mtree -f` lists spaces in creation order, which the
///   `-D` dump does not show);
/// * address spaces are created after the last change, so their published views are fresh
///   (a `set_address` on an unmapped root commits nothing, in QEMU too).
#[derive(Debug, Clone)]
struct Spec3 {
    /// Root regions: (MMIO container instead of a pure one, size).
    roots: Vec<(bool, u128)>,
    /// A "bus master" alias of one root (offset 0, full size), maybe disabled.
    bus_master: Option<(Index, bool)>,
    makes: Vec<Placed>,
    ops: Vec<Op>,
    /// Address spaces, each over one of the roots (or the bus-master alias).
    spaces: Vec<Index>,
}

fn spec3_s() -> impl Strategy<Value = Spec3> {
    (
        prop::collection::vec(
            (
                prop::bool::weighted(0.2),
                select(vec![SIZE_2_64, SIZE_2_64, 0x1_0000, 0x8000]),
            ),
            1..=3,
        ),
        prop::option::weighted(0.3, (any::<Index>(), prop::bool::weighted(0.7))),
        prop::collection::vec(placed_make_s(false), 1..14),
        prop::collection::vec(op_s(), 0..30),
        prop::collection::vec(any::<Index>(), 1..=3),
    )
        .prop_map(|(roots, bus_master, makes, ops, spaces)| Spec3 {
            roots,
            bus_master,
            makes,
            ops,
            spaces,
        })
}

/// The hints a dump of `w` needs (see `Spec3`).
fn hints_for(w: &World, space_names: &[String]) -> Hints {
    let mut h = Hints::default();
    for (i, n) in w.m.iter().enumerate() {
        let has_children = w.m.iter().any(|c| c.parent == Some(i));
        let prints_io_and_terminates =
            matches!(n.kind, Kind::Io | Kind::Reservation) || (n.kind == Kind::RomDevice && !n.romd);
        if has_children && prints_io_and_terminates {
            h.mmio_containers.push(n.name.clone());
        }
        if !has_children && n.kind == Kind::Container {
            h.pure_containers.push(n.name.clone());
        }
        if n.readonly {
            h.readonly.push(n.name.clone());
        }
    }
    h.address_space_order = space_names.to_vec();
    h
}

fn run_spec3(spec: &Spec3) -> TestResult {
    let mut w = World::new(true);
    for (k, &(io, size)) in spec.roots.iter().enumerate() {
        let make = if io { Make::Io(size) } else { Make::Container(size) };
        let r = w.create(format!("root{k}"), &make)?;
        w.tops.push(r);
    }
    if let Some((target, enabled)) = spec.bus_master {
        let t = w.tops[target.index(w.tops.len())];
        let bm = w.create_alias("bus-master".to_string(), t, 0, w.m[t].size)?;
        if !enabled {
            let real = w.mem.set_enabled(w.ids(bm), false);
            w.expect("set_enabled bus-master false".to_string(), real, Expect::Ok)?;
            w.m[bm].enabled = false;
        }
        w.tops.push(bm);
    }
    build(&mut w, &spec.makes)?;
    for op in &spec.ops {
        w.apply(op)?;
    }

    let mut spaces = Vec::new();
    let mut names = Vec::new();
    // Every root gets a space (so that few regions end up printed only in sections), then the
    // extra spaces go over random tops, up to three spaces.
    let mut space_roots: Vec<usize> = w.tops.iter().copied().take(3).collect();
    for s in &spec.spaces {
        if space_roots.len() < 3 {
            space_roots.push(w.tops[s.index(w.tops.len())]);
        }
    }
    for (k, &root) in space_roots.iter().enumerate() {
        let name = format!("as{k}-{}", w.m[root].name);
        spaces.push(w.mem.address_space(&name, w.ids(root)).map_err(|e| w.fail(e))?);
        names.push(name);
    }
    let hints = hints_for(&w, &names);

    let tree1 = mtree::print_tree(&w.mem, &TreeOptions::DISABLED);
    let flat1 = mtree::print_flat(&w.mem, &FlatOptions::default());
    let machine = mtree::import_dump(&tree1, "gen", &hints)
        .map_err(|e| w.fail(format!("import failed: {e}\nhints: {hints:?}")))?;
    let tree2 = mtree::print_tree(&machine.memory, &TreeOptions::DISABLED);
    let flat2 = mtree::print_flat(&machine.memory, &FlatOptions::default());
    if mtree::canonical(&tree1) != mtree::canonical(&tree2) {
        return Err(w.fail(format!(
            "info mtree -D differs after import\nhints: {hints:?}\n---- original ----\n{tree1}---- imported ----\n{tree2}"
        )));
    }
    if mtree::canonical(&flat1) != mtree::canonical(&flat2) {
        return Err(w.fail(format!(
            "info mtree -f differs after import\nhints: {hints:?}\n---- original ----\n{flat1}---- imported ----\n{flat2}"
        )));
    }
    // Importing the re-printed dump is a fixed point too.
    let again = mtree::import_dump(&tree2, "gen2", &hints).map_err(|e| w.fail(format!("re-import failed: {e}")))?;
    let tree3 = mtree::print_tree(&again.memory, &TreeOptions::DISABLED);
    if tree3 != tree2 {
        return Err(w.fail(format!("second import prints differently\n{tree2}----\n{tree3}")));
    }
    drop(spaces);
    Ok(())
}

proptest! {
    #![proptest_config(crate::common::sampling::config())]

    /// Property 3.
    #[test]
    fn mtree_import_print_is_stable(spec in spec3_s()) {
        run_spec3(&spec)?;
    }
}
