//! ARM SSE-200's memory map, built with the library: aliases that show a window of their own
//! container (or of an ancestor) somewhere else in it.
//!
//! Run with `cargo run -p addrspace --example ancestor_aliases`.
//!
//! `armsse-container` holds the devices and `alias 1`, a window of itself: code memory at
//! 0x0000_0000 shows again at 0x1000_0000 (the secure alias). Each CPU's container holds the
//! shared container (through an alias), its private devices, and `alias 3`, a window of that
//! CPU container itself, so the CPU's private registers answer at 0x4001_f000 and 0x5001_f000.
//! A change inside a container updates every window that shows it; a window that would show
//! itself at its own address is refused (QEMU would recurse forever).

use std::sync::Arc;

use addrspace::{GuestAddr, Memory, Unassigned, SIZE_2_64};

fn main() -> addrspace::Result<()> {
    let mem = Memory::new();
    let dev = |name: &str| mem.io(name, 0x1000, Arc::new(Unassigned));

    let sse = mem.container("armsse-container", SIZE_2_64)?;
    let code = mem.ram("code", 0x40_0000)?;
    let timer = dev("timer0")?;
    let alias1 = mem.alias("alias 1", sse, 0, 0x1000_0000)?;
    {
        let _tx = mem.transaction();
        mem.add_subregion(sse, 0, code)?;
        mem.add_subregion(sse, 0x4000_0000, timer)?;
        mem.add_subregion_overlap(sse, 0x1000_0000, alias1, -1500)?;
    }

    // Two CPUs, each with a private container that holds an alias of itself.
    let mut spaces = Vec::new();
    for cpu in 0..2 {
        let container = mem.container(&format!("arm-sse-cpu-container{cpu}"), SIZE_2_64)?;
        let shared = mem.alias(&format!("arm-sse-container-alias{cpu}"), sse, 0, SIZE_2_64)?;
        let cpuid = dev(&format!("cpuid{cpu}"))?;
        let alias3 = mem.alias("alias 3", container, 0x4000_0000, 0x1000_0000)?;
        let _tx = mem.transaction();
        mem.add_subregion_overlap(container, 0, shared, -1)?;
        mem.add_subregion(container, 0x4001_f000, cpuid)?;
        mem.add_subregion_overlap(container, 0x5000_0000, alias3, -1500)?;
        spaces.push(mem.address_space(&format!("cpu-memory-{cpu}"), container)?);
    }

    let show = |what: &str, addr: u64| {
        for s in &spaces {
            let hit = s.lookup(GuestAddr(addr));
            let text = hit.map_or("nothing".to_string(), |(r, o)| format!("{} @{:#x}", r.name(), o.0));
            println!("  {what:<28} {:>12}: {} sees {text}", format!("{addr:#x}"), s.name());
        }
    };
    println!("the same registers at two addresses, through an alias of the CPU's own container:");
    show("private registers", 0x4001_f000);
    show("...again through alias 3", 0x5001_f000);
    show("code through alias 1", 0x1000_0010);

    // A new shared device appears in every window that shows the container.
    let uart = dev("uart")?;
    mem.add_subregion(sse, 0x4000_4000, uart)?;
    println!("after mapping a UART at 0x4000_4000 in armsse-container:");
    show("the UART", 0x4000_4000);
    show("...through alias 3", 0x5000_4000);

    // An alias showing its own window at its own address would never finish rendering.
    let endless = mem.alias("endless", sse, 0x4000_0000, 0x1000)?;
    match mem.add_subregion(sse, 0x4000_0000, endless) {
        Err(e) => println!("refused, as it must be:\n  {e}"),
        Ok(()) => unreachable!("an endless cycle is refused"),
    }
    Ok(())
}
