//! Import a QEMU `info mtree -D` dump and work with it as a live machine: print its tree,
//! print its flat views, look an address up.
//!
//! Run with `cargo run -p addrspace --example import_qemu_dump [DUMP [HINTS]]`; by default it
//! imports the x86 `pc` capture from `tests/fixtures/qemu/x86-pc-512M`.
//!
//! To capture a dump yourself, run QEMU with `-monitor stdio` and type `info mtree -D`.
//! The text does not say everything (which `i/o` regions have device callbacks, which
//! aliases are read-only, in which order address spaces were created); a small hints file
//! fills those gaps, see `tests/fixtures/qemu/*/hints.toml`, and the import reports what it
//! had to guess without them.

use std::path::PathBuf;

use addrspace::mtree::{self, FlatOptions, Hints, TreeOptions};
use addrspace::GuestAddr;

/// A path inside this repository, wherever the example is run from.
fn repo_path(rel: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root).join(rel)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let dump_path = args
        .next()
        .unwrap_or_else(|| repo_path("tests/fixtures/qemu/x86-pc-512M/mtree-D.txt"));
    let hints_path = args.next().or_else(|| {
        // By default, use the hints file that sits next to the dump, if there is one.
        let h = dump_path.with_file_name("hints.toml");
        h.exists().then_some(h)
    });

    // Hints are optional; without them the importer applies QEMU's usual defaults.
    let hints = match &hints_path {
        Some(p) => Hints::from_toml(&std::fs::read_to_string(p)?, &p.display().to_string())?,
        None => Hints::default(),
    };

    // Errors name the file and line of the dump (`dump.txt:12: ...`).
    let text = std::fs::read_to_string(&dump_path)?;
    let (machine, guesses) = mtree::import_dump_with_report(&text, &dump_path.display().to_string(), &hints)?;
    // What the dump could not say and the hints did not settle: the importer guessed it.
    for g in &guesses {
        println!("guessed: {g}");
    }

    println!(
        "imported {} regions and {} address spaces from {}",
        machine.regions.len(),
        machine.address_spaces.len(),
        dump_path.display()
    );

    // The imported machine prints back as QEMU printed it (modulo the order of blocks, which
    // QEMU takes from a hash table).
    println!("\n== info mtree ==");
    print!("{}", mtree::print_tree(&machine.memory, &TreeOptions::default()));

    // The flat views are rendered by the library, not copied from the text: this is what a
    // CPU of that machine would actually see.
    println!("== info mtree -f ==");
    print!("{}", mtree::print_flat(&machine.memory, &FlatOptions::default()));

    // The imported machine is live: look addresses up in its first address space.
    if let Some(space) = machine.address_spaces.first() {
        println!("lookups in address space {:?}:", space.name());
        for addr in [0x0, 0xa0000, 0xc0000, 0xfee0_0000, 0xffff_fff0] {
            match space.lookup(GuestAddr(addr)) {
                Some((range, off)) => {
                    println!(
                        "  {addr:#010x} -> {} ({}) + {:#x}",
                        range.name(),
                        range.type_word(),
                        off.0
                    )
                }
                None => println!("  {addr:#010x} -> unmapped"),
            }
        }
    }
    Ok(())
}
