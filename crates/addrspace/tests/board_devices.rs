//! Board files bind the VMM's device models: `board::Loader` attaches `RegionOps` to the `io`
//! and `rom-device` regions a board declares (by id, or from a resolver), accesses through
//! the machine's address spaces reach them, and a device model the board names but nobody
//! provides is an error at its `ops` line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use addrspace::board::{self, DeviceKind, Loader};
use addrspace::{Endianness::Little, GuestAddr, LoadError, MemTxAttrs, MemTxResult, RegionOps};

/// A device that counts its reads and writes; reads return 0x5a.
#[derive(Default)]
struct Counter {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Counter {
    fn counts(&self) -> (u64, u64) {
        (self.reads.load(Ordering::Relaxed), self.writes.load(Ordering::Relaxed))
    }
}

impl RegionOps for Counter {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        (0x5a, MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.writes.fetch_add(1, Ordering::Relaxed);
        MemTxResult::OK
    }
}

const BOARD: &str = r#"
[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  { region = "ram", addr = 0 },
  { region = "uart", addr = "0x9000000" },
  { region = "flash", addr = "0x10000000" },
  { region = "bus", addr = "0x20000000" },
]

[[region]]
name = "ram"
type = "ram"
size = "64K"

[[region]]
id = "uart"
name = "pl011"
type = "io"
size = "4K"
ops = "pl011"

[[region]]
name = "flash"
type = "rom-device"
size = "64K"
romd = false

[[region]]
name = "bus"
type = "io"
size = "4K"
ops = "open-bus"

[[address-space]]
name = "memory"
root = "system"
"#;

/// The line of `BOARD` holding `ops = "pl011"`.
const OPS_LINE: usize = 23;

/// Plain attributes (not a debug access).
const A: MemTxAttrs = MemTxAttrs {
    debug: false,
    ..MemTxAttrs::DEBUG
};

#[test]
fn bound_devices_receive_the_accesses_of_the_address_space() {
    let uart = Arc::new(Counter::default());
    let flash = Arc::new(Counter::default());
    let machine = Loader::new()
        .bind("uart", uart.clone())
        .bind("flash", flash.clone())
        .load_str(BOARD, "board.toml")
        .unwrap();
    let space = machine.address_space("memory").unwrap();
    assert_eq!(space.store(GuestAddr(0x900_0000), 0x41_u8, Little, A), MemTxResult::OK);
    assert_eq!(
        space.load::<u32>(GuestAddr(0x900_0004), Little, A),
        (0x5a, MemTxResult::OK)
    );
    assert_eq!(uart.counts(), (1, 1));
    // The ROM device is out of romd mode: reads and writes go to its ops.
    assert_eq!(
        space.load::<u8>(GuestAddr(0x1000_0000), Little, A),
        (0x5a, MemTxResult::OK)
    );
    assert_eq!(flash.counts(), (1, 0));
    // Through an accessor (a vCPU thread's handle) too.
    let mut cpu = space.accessor();
    assert_eq!(cpu.store(GuestAddr(0x900_0008), 1_u32, Little, A), MemTxResult::OK);
    assert_eq!(uart.counts(), (1, 2));
    // The region not bound keeps its built-in behaviour.
    assert_eq!(
        space.load::<u8>(GuestAddr(0x2000_0000), Little, A),
        (0xff, MemTxResult::OK)
    );
    assert_eq!(machine.devices, [("uart".to_string(), "pl011".to_string())]);
}

#[test]
fn the_resolver_sees_every_device_region_and_may_replace_built_ins() {
    let counter = Arc::new(Counter::default());
    let mut seen = Vec::new();
    let machine = Loader::new()
        .resolver(|req| {
            seen.push((
                req.id.to_string(),
                req.name.to_string(),
                req.size,
                req.kind,
                req.ops.map(str::to_string),
            ));
            let ops: Arc<dyn RegionOps> = counter.clone();
            (req.id != "flash").then_some(ops)
        })
        .load_str(BOARD, "board.toml")
        .unwrap();
    assert_eq!(
        seen,
        [
            (
                "uart".into(),
                "pl011".into(),
                0x1000,
                DeviceKind::Io,
                Some("pl011".into())
            ),
            ("flash".into(), "flash".into(), 0x10000, DeviceKind::RomDevice, None),
            (
                "bus".into(),
                "bus".into(),
                0x1000,
                DeviceKind::Io,
                Some("open-bus".into())
            ),
        ]
    );
    let space = machine.address_space("memory").unwrap();
    assert_eq!(
        space.load::<u8>(GuestAddr(0x2000_0000), Little, A),
        (0x5a, MemTxResult::OK)
    );
    assert_eq!(
        space.load::<u8>(GuestAddr(0x900_0000), Little, A),
        (0x5a, MemTxResult::OK)
    );
    assert_eq!(counter.counts(), (2, 0));
    // `flash` was left to its `ops`: unassigned.
    assert_eq!(
        space.load::<u8>(GuestAddr(0x1000_0000), Little, A).1,
        MemTxResult::DECODE_ERROR
    );
    // A binding by id wins over the resolver.
    let bound = Arc::new(Counter::default());
    let m = Loader::new()
        .bind("uart", bound.clone())
        .resolver(|_| Some(Arc::new(Counter::default())))
        .load_str(BOARD, "board.toml")
        .unwrap();
    let _ = m.address_spaces[0].load::<u8>(GuestAddr(0x900_0000), Little, A);
    assert_eq!(bound.counts(), (1, 0));
}

/// Before `Loader`, any `ops` other than `unassigned`/`open-bus` was a TOML error ("unknown
/// variant"); now it names a device model, and an unbound one is refused at its line.
#[test]
fn a_device_model_nobody_provides_is_an_error_at_its_ops_line() {
    let err = board::load_str(BOARD, "board.toml").unwrap_err();
    let shown = err.to_string();
    let LoadError::Board { line, msg, .. } = err else {
        panic!("expected a board error, got {err:?}")
    };
    assert_eq!(line, OPS_LINE, "{shown}");
    assert!(msg.contains("`uart`") && msg.contains("`pl011`"), "{msg}");
    // A resolver that does not provide it fails the same way.
    let err = Loader::new()
        .resolver(|_| None)
        .load_str(BOARD, "board.toml")
        .unwrap_err();
    assert!(err.to_string().starts_with(&format!("board.toml:{OPS_LINE}:")), "{err}");
}

#[test]
fn placeholders_load_print_and_export_unbound_device_models() {
    let machine = Loader::new().placeholders(true).load_str(BOARD, "board.toml").unwrap();
    let space = machine.address_space("memory").unwrap();
    assert_eq!(
        space.load::<u8>(GuestAddr(0x900_0000), Little, A).1,
        MemTxResult::DECODE_ERROR
    );
    let text = board::export(&machine);
    assert!(text.contains("ops = \"pl011\""), "{text}");
    // The export still asks for the device.
    assert!(board::load_str(&text, "export.toml").is_err());
    let again = Loader::new().placeholders(true).load_str(&text, "export.toml").unwrap();
    assert_eq!(board::export(&again), text);
}

#[test]
fn bindings_must_name_a_device_region_of_the_board() {
    let ops = || -> Arc<dyn RegionOps> { Arc::new(Counter::default()) };
    let err = Loader::new()
        .placeholders(true)
        .bind("uart0", ops())
        .load_str(BOARD, "board.toml")
        .unwrap_err();
    assert!(err.to_string().contains("`uart0`"), "{err}");
    let err = Loader::new()
        .placeholders(true)
        .bind("ram", ops())
        .load_str(BOARD, "board.toml")
        .unwrap_err();
    let LoadError::Board { line, msg, .. } = err else {
        panic!("expected a board error, got {err:?}")
    };
    assert_eq!(line, 14, "{msg}");
    assert!(msg.contains("not an `io` or `rom-device` region"), "{msg}");
}
