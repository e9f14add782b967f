//! The demo board's guest programs (`addrspace run --accel kvm`) decode back to their source.

use addrspace_kvm::guest::{self, DemoLayout};

#[test]
fn demo_programs_decode_to_their_source() {
    let layout = DemoLayout {
        msg: 0x2000,
        len: 5,
        uart: 0xa000,
        romdev: 0x9010,
        romd_ctl: 0xa100,
        bar_reg: 0xa200,
        bar_new: 0xd000,
        report: 0x80,
    };
    let p = guest::demo_boot(0x1000, &layout).unwrap();
    assert_eq!(
        p.disassemble(),
        [
            "mov si,2000h",
            "mov cx,5h",
            "mov al,[si]",
            "mov [0A000h],al",
            "inc si",
            "dec cx",
            "jne 1006h",
            "mov dx,80h",
            "mov al,[9010h]",
            "out dx,al",
            "mov byte ptr [0A100h],0h",
            "mov al,[9010h]",
            "out dx,al",
            "mov byte ptr [0A100h],1h",
            "mov word ptr [0A200h],0D000h",
            "mov byte ptr [0D004h],42h",
            "mov al,[0D004h]",
            "out dx,al",
            "hlt",
        ]
    );
    let p = guest::uart_print(0x8000, 0x8100, 8, 0xa000).unwrap();
    assert_eq!(
        p.disassemble(),
        [
            "mov si,8100h",
            "mov cx,8h",
            "mov al,[si]",
            "mov [0A000h],al",
            "inc si",
            "dec cx",
            "jne 8006h",
            "hlt",
        ]
    );
}
