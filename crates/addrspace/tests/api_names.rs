//! The public API names what it exposes: every type reachable from a public field or
//! signature can be named by a user (the `[[cluster]]` and `[[cpu-root]]` tables of a
//! `BoardDesc` were types of a private module before), and the enums that will grow are
//! `#[non_exhaustive]` (a match needs a `_` arm).

use addrspace::board::{self, BoardDesc, ClusterDesc, CpuRootDesc, CpuRootEntry, CpuSpaceDesc};
use addrspace::{Backend, CommitMode, RegionKind};

/// The CPU tables of a board description, by their public names.
fn cpu_tables(d: &BoardDesc) -> (&[ClusterDesc], &[CpuSpaceDesc], &[CpuRootDesc], &[CpuRootEntry]) {
    let spaces = d.clusters.first().map_or(&[][..], |c| &c.spaces[..]);
    let entries = d.cpu_roots.first().map_or(&[][..], |r| &r.subregions[..]);
    (&d.clusters, spaces, &d.cpu_roots, entries)
}

#[test]
fn board_cpu_tables_are_nameable() {
    let text = r#"
[[region]]
name = "system"
type = "container"
size = "2^64"

[[cpu-root]]
name = "cpu-root"
size = "2^64"
subregions = [{ name = "sys", alias = "system" }]

[[cluster]]
name = "cpus"
max-cpus = 2
spaces = [{ index = 0, prefix = "cpu-memory", per-cpu = "cpu-root" }]
"#;
    let desc: BoardDesc = toml::from_str(text).unwrap();
    let (clusters, spaces, roots, entries) = cpu_tables(&desc);
    assert_eq!(clusters[0].name.get_ref(), "cpus");
    assert_eq!(spaces[0].prefix, "cpu-memory");
    assert_eq!(roots[0].name.get_ref(), "cpu-root");
    assert_eq!(entries[0].name.get_ref(), "sys");
    board::load_str(text, "cpus.toml").unwrap();
}

#[test]
fn growing_enums_need_a_wildcard_arm() {
    let word = |k: RegionKind| match k {
        RegionKind::Ram => "ram",
        RegionKind::Container => "container",
        _ => "other",
    };
    assert_eq!(word(RegionKind::Ram), "ram");
    let mem = addrspace::Memory::new();
    let ram = mem.ram("ram", 0x1000).unwrap();
    let leaf = mem.leaf(ram).unwrap().unwrap();
    assert!(matches!(leaf.backend(), Backend::Ram(_)));
    assert!(!matches!(CommitMode::default(), CommitMode::Full));
}
