//! Reading and writing guest memory from a vCPU thread, and a device model: a UART-like
//! register block with QEMU-style access rules and a DMA register that copies guest memory
//! through the address space it lives in (holding it weakly, as devices must).
//!
//! Run: `cargo run -p addrspace --example device_access`

use std::sync::{Arc, Mutex};

use addrspace::{
    AccessRules, Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionOps, SizeRule, WeakAddressSpace,
    SIZE_2_64,
};

/// Registers: 0x0 data (write: append to the log), 0x4 DMA source address (write: copy 4
/// bytes from guest memory at that address into the log).
struct Uart {
    log: Mutex<Vec<u8>>,
    dma: Mutex<WeakAddressSpace>,
}

impl RegionOps for Uart {
    fn read(&self, offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        match offset {
            0x0 => (self.log.lock().unwrap().len() as u64, MemTxResult::OK),
            _ => (0, MemTxResult::OK),
        }
    }

    fn write(&self, offset: u64, value: u64, _size: u32, attrs: MemTxAttrs) -> MemTxResult {
        match offset {
            0x0 => {
                self.log.lock().unwrap().push(value as u8);
                MemTxResult::OK
            }
            0x4 => {
                // DMA: upgrade the weak handle only while acting.
                let Some(space) = self.dma.lock().unwrap().upgrade() else {
                    return MemTxResult::ERROR;
                };
                let mut buf = [0u8; 4];
                let r = space.read(GuestAddr(value), &mut buf, attrs);
                self.log.lock().unwrap().extend_from_slice(&buf);
                r
            }
            _ => MemTxResult::OK,
        }
    }

    fn rules(&self) -> AccessRules {
        AccessRules {
            valid: SizeRule::aligned(1, 4),          // the guest may do 1..4-byte aligned accesses
            implementation: SizeRule::aligned(4, 4), // the callbacks see 4-byte accesses only
            ..AccessRules::default()
        }
    }
}

pub fn main() -> Result<(), addrspace::Error> {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64)?;
    let ram = mem.ram("ram", 0x10_0000)?;
    let uart = Arc::new(Uart {
        log: Mutex::new(Vec::new()),
        dma: Mutex::new(WeakAddressSpace::default()),
    });
    let uart_region = mem.io("uart", 0x1000, uart.clone())?;
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram)?;
        mem.add_subregion(system, 0x900_0000, uart_region)?;
    }
    let space = mem.address_space("memory", system)?;
    *uart.dma.lock().unwrap() = space.downgrade();

    // A vCPU thread: one accessor, typed loads and stores.
    let vcpu = {
        let space = space.clone();
        std::thread::spawn(move || {
            let mut cpu = space.accessor();
            let a = MemTxAttrs::default();
            assert!(cpu.write(GuestAddr(0x1000), b"hi!\n", a).is_ok());
            for &b in b"ok" {
                assert!(cpu.store(GuestAddr(0x900_0000), b, Endianness::Little, a).is_ok());
            }
            // An 8-byte store is not valid for this device: refused, nothing logged.
            let bad = cpu.store(GuestAddr(0x900_0000), 0u64, Endianness::Little, a);
            // Ask the device to DMA 4 bytes from 0x1000.
            assert!(cpu
                .store(GuestAddr(0x900_0004), 0x1000u32, Endianness::Little, a)
                .is_ok());
            let (len, _) = cpu.load::<u8>(GuestAddr(0x900_0000), Endianness::Little, a);
            (bad, len)
        })
    };
    let (bad, len) = vcpu.join().unwrap();
    println!("8-byte store to the UART: {bad:?}");
    println!("log length read back by the guest: {len}");
    println!("log: {:?}", String::from_utf8_lossy(&uart.log.lock().unwrap()));
    assert_eq!(&*uart.log.lock().unwrap(), b"okhi!\n");
    Ok(())
}
