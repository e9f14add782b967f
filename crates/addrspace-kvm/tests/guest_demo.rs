//! The demo board's guest programs (`addrspace run --accel kvm`) decode back to their source,
//! with `HLT` or with an idle loop at the end.

use addrspace_kvm::guest::{self, DemoLayout, Idle, OutReg};

fn layout() -> DemoLayout {
    DemoLayout {
        msg: 0x2000,
        len: 5,
        uart: 0xa000,
        romdev: 0x9010,
        romd_ctl: 0xa100,
        bar_reg: 0xa200,
        bar_new: 0xd000,
        report: 0x80,
    }
}

#[test]
fn demo_programs_decode_to_their_source() {
    let p = guest::demo_boot(0x1000, &layout()).unwrap();
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

#[test]
fn idle_loops_decode_to_their_source() {
    // A port below 256 is an immediate: the loop's first instruction is the OUT.
    let p = guest::idle(0x1000, &Idle::new(0x80)).unwrap();
    assert_eq!(p.disassemble(), ["out 80h,al", "hlt", "jmp 1000h"]);
    // A higher one goes through DX, loaded before the loop; the register sets the width.
    let wide = Idle {
        port: 0x3f8,
        reg: OutReg::Ax,
    };
    let p = guest::idle(0x2000, &wide).unwrap();
    assert_eq!(p.disassemble(), ["mov dx,3F8h", "out dx,ax", "hlt", "jmp 2003h"]);
    let dword = Idle {
        port: 0x81,
        reg: OutReg::Eax,
    };
    let p = guest::idle(0x2000, &dword).unwrap();
    assert_eq!(p.disassemble(), ["out 81h,eax", "hlt", "jmp 2000h"]);
}

#[test]
fn then_idle_variants_replace_the_final_hlt_with_the_loop() {
    let idle = Idle::new(0x84);
    let ends_with_loop = |then_idle: Vec<String>, plain: Vec<String>| {
        let (body, last) = plain.split_at(plain.len() - 1);
        assert_eq!(last, ["hlt"]);
        assert_eq!(&then_idle[..body.len()], body);
        let tail: Vec<&str> = then_idle[body.len()..].iter().map(String::as_str).collect();
        assert_eq!(tail[..2], ["out 84h,al", "hlt"]);
        assert!(tail[2].starts_with("jmp "), "{tail:?}");
        assert_eq!(tail.len(), 3);
    };
    let l = layout();
    ends_with_loop(
        guest::demo_boot_then_idle(0x1000, &l, &idle).unwrap().disassemble(),
        guest::demo_boot(0x1000, &l).unwrap().disassemble(),
    );
    ends_with_loop(
        guest::uart_print_then_idle(0x8000, 0x8100, 8, 0xa000, &idle)
            .unwrap()
            .disassemble(),
        guest::uart_print(0x8000, 0x8100, 8, 0xa000).unwrap().disassemble(),
    );
}
