//! Load a board file and attach a device model of your own to an `io` region it declares,
//! then run guest accesses against it through the board's address space.
//!
//! Run with `cargo run -p addrspace --example board_devices`.
//!
//! The board names the device it expects (`ops = "uart"`); the VMM binds its `RegionOps`
//! to the region's id with `board::Loader::bind` (or answers a resolver that sees every
//! device region). Loading the same board without binding `uart` fails at the `ops` line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use addrspace::board::Loader;
use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, RegionOps};

const BOARD: &str = r#"
[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  { region = "ram", addr = 0 },
  { region = "serial", addr = "0x9000000" },
]

[[region]]
name = "ram"
type = "ram"
size = "1M"

[[region]]
name = "serial"
type = "io"
size = "4K"
ops = "uart"

[[address-space]]
name = "memory"
root = "system"
"#;

/// A toy UART: collects the bytes written to its data register (offset 0) and counts every
/// access.
#[derive(Default)]
struct Uart {
    accesses: AtomicU64,
    out: std::sync::Mutex<Vec<u8>>,
}

impl RegionOps for Uart {
    fn read(&self, offset: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.accesses.fetch_add(1, Ordering::Relaxed);
        // Offset 0x18 is the flag register: "transmit FIFO empty".
        (if offset == 0x18 { 0x80 } else { 0 }, MemTxResult::OK)
    }

    fn write(&self, offset: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.accesses.fetch_add(1, Ordering::Relaxed);
        if offset == 0 {
            self.out.lock().unwrap().push(value as u8);
        }
        MemTxResult::OK
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uart = Arc::new(Uart::default());
    let machine = Loader::new()
        .bind("serial", uart.clone())
        .load_str(BOARD, "example.toml")?;
    let space = machine.address_space("memory").expect("declared by the board");

    let attrs = MemTxAttrs::default();
    let base = 0x900_0000;
    for byte in b"hello\n" {
        let (flags, result) = space.load::<u32>(GuestAddr(base + 0x18), Endianness::Little, attrs);
        assert!(result.is_ok() && flags & 0x80 != 0);
        let result = space.store(GuestAddr(base), u32::from(*byte), Endianness::Little, attrs);
        assert!(result.is_ok());
    }
    print!(
        "the guest wrote: {}",
        String::from_utf8_lossy(&uart.out.lock().unwrap())
    );
    println!("device accesses: {}", uart.accesses.load(Ordering::Relaxed));

    // Without the binding, the board's `ops = "uart"` is refused at its line.
    if let Err(e) = addrspace::board::load_str(BOARD, "example.toml") {
        println!("without a device model: {e}");
    }
    Ok(())
}
