//! Load a machine from a TOML board file and list its address spaces and the ranges each
//! one sees.
//!
//! Run with `cargo run -p addrspace --example board_file [BOARD.toml]`; by default it loads
//! `boards/virt.toml` (QEMU's Arm `virt` machine).
//!
//! A board file describes regions (`[[region]]` tables: name, type, size, and for
//! containers the `subregions` mapped in them) and address spaces (`[[address-space]]`:
//! a name and a root region). See the `addrspace::board` documentation for the format;
//! `addrspace board --from-qemu DUMP` writes one from a QEMU `info mtree -D` dump.

use std::path::PathBuf;
use std::sync::Arc;

use addrspace::board;

/// A path inside this repository, wherever the example is run from.
fn repo_path(rel: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root).join(rel)
}

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path("boards/virt.toml"));

    // Every mistake in a board file is reported as `file:line:column: what is wrong`,
    // and nothing is built unless the whole file is valid.
    let machine = match board::load_file(&path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };

    println!("{}: {} regions", path.display(), machine.regions.len());

    // Regions can be found again by the id they have in the file, e.g. to attach devices.
    if let Some(id) = machine.region("mach-virt.ram") {
        let info = machine.memory.region_info(id).expect("live region");
        println!("mach-virt.ram: {:#x} bytes at {:#x}", info.size, info.addr);
    }

    // Address spaces in creation order. Spaces whose roots render the same share one flat
    // view (QEMU does the same), so list each distinct view once.
    let mut seen: Vec<Arc<addrspace::FlatView>> = Vec::new();
    for space in &machine.address_spaces {
        let view = space.view();
        if let Some(first) = seen.iter().position(|v| Arc::ptr_eq(v, &view)) {
            println!("\naddress space {:?}: same view as #{first}", space.name());
            continue;
        }
        println!(
            "\naddress space {:?} (view #{}, root {}): {} ranges",
            space.name(),
            seen.len(),
            view.root_name().unwrap_or("(none)"),
            view.ranges().len()
        );
        for r in view.ranges() {
            // `end()` is a u128 so that a range ending at 2^64 is representable.
            println!(
                "  {:#018x}-{:#018x} {:<4} {} @{:#x}",
                r.start().0,
                r.end() - 1,
                r.type_word(),
                r.name(),
                r.offset_in_region().0
            );
        }
        seen.push(view);
    }
}
