//! A guest prints through an MMIO UART dispatched via its CPU's own address space and through
//! a port via the I/O space; the guest programs decode back to their source.

mod vcpu_support;

use addrspace::cpu::Cluster;
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices};
use vcpu_support::{kvm_or_skip, Board, COM1, UART};

const MSG: &[u8] = b"hello from the guest\n";

#[test]
fn guest_programs_decode_to_their_source() {
    let p = guest::uart_hello(0x1000, 0x2000, 21, UART, COM1).unwrap();
    assert_eq!(
        p.disassemble(),
        [
            "mov si,2000h",
            "mov cx,15h",
            "mov dx,3F8h",
            "mov al,[si]",
            "mov [0A000h],al",
            "out dx,al",
            "inc si",
            "dec cx",
            "jne 1009h",
            "hlt",
        ]
    );
    let p = guest::read_and_report(0x1100, 0xb000, 0x81).unwrap();
    assert_eq!(p.disassemble(), ["mov al,[0B000h]", "mov dx,81h", "out dx,al", "hlt"]);
    let p = guest::spin(0x1200, 0x3000).unwrap();
    assert_eq!(p.disassemble(), ["inc word ptr [3000h]", "jmp 1200h"]);
    let p = guest::echo_forever(0x1300, 0xc000, 0x80).unwrap();
    assert_eq!(
        p.disassemble(),
        ["mov dx,80h", "mov al,[0C000h]", "out dx,al", "jmp 1303h"]
    );
    assert_eq!(p.code, [0xba, 0x80, 0x00, 0xa0, 0x00, 0xc0, 0xee, 0xeb, 0xfa]);
    let p = guest::coalesced_then_report(0x1400, 0xb000, 2, 0x80).unwrap();
    assert_eq!(
        p.disassemble(),
        [
            "mov byte ptr [0B000h],1h",
            "mov byte ptr [0B001h],2h",
            "mov al,2h",
            "out 80h,al",
            "hlt"
        ]
    );
    let p = guest::mmio_write_loop(0x1500, 0xa000, 3).unwrap();
    assert_eq!(
        p.disassemble(),
        ["mov cx,3h", "mov [0A000h],al", "dec cx", "jne 1503h", "hlt"]
    );
}

#[test]
fn guest_prints_through_mmio_and_port() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let program = guest::uart_hello(0x1000, 0x2000, MSG.len() as u16, UART, COM1).unwrap();
    board.load(&program, &[(0x2000, MSG)]);
    let (vm, _slots) = board.vm(&kvm);
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    cpus.plug(0, Entry::real_mode(program.base)).unwrap();
    assert_eq!(cpus.vcpu(0).unwrap().id(), 0);
    assert_eq!(cpus.wait(0).unwrap(), RunEnd::Halted);
    let exits = cpus.exits(0).unwrap();
    let n = MSG.len() as u64;
    assert_eq!(
        (exits.mmio_writes, exits.pio_outs, exits.mmio_reads, exits.failed),
        (n, n, 0, 0)
    );
    assert_eq!(board.uart.bytes(), MSG, "the UART (MMIO via cpu-memory-0)");
    assert_eq!(board.com1.bytes(), MSG, "COM1 (port I/O via the I/O space)");
    assert_eq!(cpus.unplug(0).unwrap(), RunEnd::Halted);
    assert_eq!(cpus.pool().parked(), 1);
}
