//! Tiny x86 guest programs, kept as source: each is built with iced-x86's code assembler
//! (16-bit real mode, CS base 0) and can be decoded back with [`Program::disassemble`].
//!
//! This host emulates every guest instruction (about 1 µs each), so the programs are a few
//! instructions long and end with `HLT`, or (the `*_then_idle` variants, for a machine that
//! keeps running under [`HaltPolicy::Idle`](crate::vcpu::HaltPolicy::Idle)) with an idle
//! loop that writes a heartbeat to a port and halts until the next tick ([`Idle`]).
//!
//! ```
//! use addrspace_kvm::guest;
//!
//! let p = guest::uart_hello(0x1000, 0x2000, 5, 0xa000, 0x3f8)?;
//! assert_eq!(p.disassemble().last().map(String::as_str), Some("hlt"));
//! # Ok::<(), iced_x86::IcedError>(())
//! ```

use iced_x86::code_asm::{al, ax, byte_ptr, cx, dx, eax, si, word_ptr, CodeAssembler};
use iced_x86::{Decoder, DecoderOptions, FastFormatter, IcedError};

/// Assembled guest code and the address it was assembled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Where the code must be loaded (and the vCPU's `IP`).
    pub base: u64,
    /// The machine code.
    pub code: Vec<u8>,
}

impl Program {
    fn build(base: u64, body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Result<Program, IcedError> {
        let mut a = CodeAssembler::new(16)?;
        body(&mut a)?;
        Ok(Program {
            base,
            code: a.assemble(base)?,
        })
    }

    /// The code decoded back (16-bit), one instruction per line, lower case Intel syntax
    /// without addresses (e.g. `mov [0A000h],al`).
    pub fn disassemble(&self) -> Vec<String> {
        let mut decoder = Decoder::with_ip(16, &self.code, self.base, DecoderOptions::NONE);
        let mut fmt = FastFormatter::new();
        let mut out = Vec::new();
        for insn in &mut decoder {
            let mut s = String::new();
            fmt.format(&insn, &mut s);
            out.push(s);
        }
        out
    }
}

/// Prints `len` bytes at `msg` byte by byte to the UART data register at MMIO address `uart`
/// and to I/O port `port`, then halts. All addresses below 64 KiB (DS base 0).
///
/// ```text
///         mov si, msg
///         mov cx, len
///         mov dx, port
/// next:   mov al, [si]
///         mov [uart], al      ; MMIO exit
///         out dx, al          ; port-I/O exit
///         inc si
///         dec cx
///         jne next
///         hlt
/// ```
pub fn uart_hello(base: u64, msg: u16, len: u16, uart: u16, port: u16) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        let mut next = a.create_label();
        a.mov(si, u32::from(msg))?;
        a.mov(cx, u32::from(len))?;
        a.mov(dx, u32::from(port))?;
        a.set_label(&mut next)?;
        a.mov(al, byte_ptr(si))?;
        a.mov(byte_ptr(u64::from(uart)), al)?;
        a.out(dx, al)?;
        a.inc(si)?;
        a.dec(cx)?;
        a.jne(next)?;
        a.hlt()
    })
}

/// Reads one byte from MMIO address `dev`, writes it to port `port`, halts.
///
/// ```text
///         mov al, [dev]       ; MMIO read exit
///         mov dx, port
///         out dx, al
///         hlt
/// ```
pub fn read_and_report(base: u64, dev: u16, port: u16) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        a.mov(al, byte_ptr(u64::from(dev)))?;
        a.mov(dx, u32::from(port))?;
        a.out(dx, al)?;
        a.hlt()
    })
}

/// Spins forever incrementing the 16-bit RAM counter at `counter` (no exits: a vCPU running
/// it leaves `KVM_RUN` only when kicked).
///
/// ```text
/// top:    inc word [counter]
///         jmp top
/// ```
pub fn spin(base: u64, counter: u16) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.inc(word_ptr(u64::from(counter)))?;
        a.jmp(top)
    })
}

/// Forever: reads a byte from MMIO address `dev` and writes it to port `port` (two exits per
/// iteration, so a kick almost always lands with an MMIO or port access pending).
///
/// ```text
///         mov dx, port
/// top:    mov al, [dev]       ; MMIO read exit
///         out dx, al          ; port-I/O exit
///         jmp top
/// ```
pub fn echo_forever(base: u64, dev: u16, port: u16) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        let mut top = a.create_label();
        a.mov(dx, u32::from(port))?;
        a.set_label(&mut top)?;
        a.mov(al, byte_ptr(u64::from(dev)))?;
        a.out(dx, al)?;
        a.jmp(top)
    })
}

/// Writes the bytes `1..=n` to MMIO addresses `dev`, `dev + 1`, ... (a coalesced zone: no
/// exits), then `n` to port `port` (an exit, which drains the ring first), then halts.
///
/// ```text
///         mov byte [dev + i], i + 1   ; for i in 0..n
///         mov al, n
///         out port, al
///         hlt
/// ```
pub fn coalesced_then_report(base: u64, dev: u16, n: u8, port: u8) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        for i in 0..n {
            a.mov(byte_ptr(u64::from(dev) + u64::from(i)), u32::from(i) + 1)?;
        }
        a.mov(al, u32::from(n))?;
        a.out(u32::from(port), al)?;
        a.hlt()
    })
}

/// Writes `al` to MMIO address `dev` `n` times (one exit each), then halts.
///
/// ```text
///         mov cx, n
/// top:    mov [dev], al       ; MMIO write exit
///         dec cx
///         jne top
///         hlt
/// ```
pub fn mmio_write_loop(base: u64, dev: u16, n: u16) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        let mut top = a.create_label();
        a.mov(cx, u32::from(n))?;
        a.set_label(&mut top)?;
        a.mov(byte_ptr(u64::from(dev)), al)?;
        a.dec(cx)?;
        a.jne(top)?;
        a.hlt()
    })
}

/// Writes `len` bytes at `msg` to the UART data register at MMIO address `uart` (no port
/// I/O), then halts.
///
/// ```text
///         mov si, msg
///         mov cx, len
/// next:   mov al, [si]
///         mov [uart], al      ; MMIO exit
///         inc si
///         dec cx
///         jne next
///         hlt
/// ```
pub fn uart_print(base: u64, msg: u16, len: u16, uart: u16) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        uart_print_body(a, msg, len, uart)?;
        a.hlt()
    })
}

/// [`uart_print`] ending in the idle loop `idle` instead of its `HLT` (an AP that prints
/// its message, then keeps running).
pub fn uart_print_then_idle(base: u64, msg: u16, len: u16, uart: u16, idle: &Idle) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        uart_print_body(a, msg, len, uart)?;
        idle.emit(a)
    })
}

fn uart_print_body(a: &mut CodeAssembler, msg: u16, len: u16, uart: u16) -> Result<(), IcedError> {
    let mut next = a.create_label();
    a.mov(si, u32::from(msg))?;
    a.mov(cx, u32::from(len))?;
    a.set_label(&mut next)?;
    a.mov(al, byte_ptr(si))?;
    a.mov(byte_ptr(u64::from(uart)), al)?;
    a.inc(si)?;
    a.dec(cx)?;
    a.jne(next)
}

/// Where the devices of [`demo_boot`] are (all below 64 KiB: DS base 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoLayout {
    /// The message in RAM.
    pub msg: u16,
    /// Its length.
    pub len: u16,
    /// The UART data register (MMIO).
    pub uart: u16,
    /// A byte of the ROM device, read in romd mode and out of it.
    pub romdev: u16,
    /// The ROM device's control register: a byte write of 0 leaves romd mode, 1 enters it.
    pub romd_ctl: u16,
    /// The config device's BAR register: a 16-bit write moves the BAR to that address.
    pub bar_reg: u16,
    /// Where the guest moves the BAR.
    pub bar_new: u16,
    /// The report port: each reported byte is an `OUT` to it.
    pub report: u16,
}

/// The demo board's boot program: prints the message through the UART, reads the ROM
/// device in romd mode (ROM data, no exit) and with romd off (the device answers), moves
/// the BAR by writing the BAR register, writes `0x42` through the BAR's new address and
/// reads it back, reporting the three bytes read to the report port, then halts.
///
/// ```text
///         mov si, msg
///         mov cx, len
/// next:   mov al, [si]
///         mov [uart], al          ; UART
///         inc si
///         dec cx
///         jne next
///         mov dx, report
///         mov al, [romdev]        ; romd on: ROM data from a read-only memslot
///         out dx, al
///         mov byte [romd_ctl], 0  ; romd off (the device's callback calls set_romd)
///         mov al, [romdev]        ; MMIO exit: the device answers
///         out dx, al
///         mov byte [romd_ctl], 1  ; romd on again
///         mov word [bar_reg], bar_new   ; the callback calls set_address on the BAR
///         mov byte [bar_new+4], 42h     ; through the new address
///         mov al, [bar_new+4]
///         out dx, al
///         hlt
/// ```
pub fn demo_boot(base: u64, l: &DemoLayout) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        demo_boot_body(a, l)?;
        a.hlt()
    })
}

/// [`demo_boot`] ending in the idle loop `idle` instead of its `HLT` (the boot CPU keeps
/// running after the demo).
pub fn demo_boot_then_idle(base: u64, l: &DemoLayout, idle: &Idle) -> Result<Program, IcedError> {
    Program::build(base, |a| {
        demo_boot_body(a, l)?;
        idle.emit(a)
    })
}

fn demo_boot_body(a: &mut CodeAssembler, l: &DemoLayout) -> Result<(), IcedError> {
    let mut next = a.create_label();
    let at = |x: u16| u64::from(x);
    a.mov(si, u32::from(l.msg))?;
    a.mov(cx, u32::from(l.len))?;
    a.set_label(&mut next)?;
    a.mov(al, byte_ptr(si))?;
    a.mov(byte_ptr(at(l.uart)), al)?;
    a.inc(si)?;
    a.dec(cx)?;
    a.jne(next)?;
    a.mov(dx, u32::from(l.report))?;
    a.mov(al, byte_ptr(at(l.romdev)))?;
    a.out(dx, al)?;
    a.mov(byte_ptr(at(l.romd_ctl)), 0u32)?;
    a.mov(al, byte_ptr(at(l.romdev)))?;
    a.out(dx, al)?;
    a.mov(byte_ptr(at(l.romd_ctl)), 1u32)?;
    a.mov(word_ptr(at(l.bar_reg)), u32::from(l.bar_new))?;
    a.mov(byte_ptr(at(l.bar_new) + 4), 0x42u32)?;
    a.mov(al, byte_ptr(at(l.bar_new) + 4))?;
    a.out(dx, al)
}

/// The register an idle loop's heartbeat `OUT` writes (its width is the port access's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutReg {
    /// A byte from `AL`.
    #[default]
    Al,
    /// A word from `AX`.
    Ax,
    /// A dword from `EAX`.
    Eax,
}

/// An idle loop: forever, a heartbeat `OUT` to `port`, then `HLT` (under
/// [`HaltPolicy::Idle`](crate::vcpu::HaltPolicy::Idle) each `HLT` waits one tick, so the
/// heartbeats come once a tick). A port below 256 is an immediate operand (the loop's first
/// instruction is the `OUT`); a higher one goes through `DX`, loaded once before the loop.
///
/// ```text
///         mov dx, port        ; only for port > 0FFh
/// l:      out port, al        ; (or dx; ax / eax per `reg`)
///         hlt
///         jmp l
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idle {
    /// The heartbeat port.
    pub port: u16,
    /// What the heartbeat writes.
    pub reg: OutReg,
}

impl Idle {
    /// Heartbeats of `AL` to `port`.
    pub fn new(port: u16) -> Idle {
        Idle { port, reg: OutReg::Al }
    }

    /// Appends the loop to the code being assembled (for programs built with iced-x86's
    /// [`CodeAssembler`] directly).
    pub fn emit(&self, a: &mut CodeAssembler) -> Result<(), IcedError> {
        let mut top = a.create_label();
        let imm = u8::try_from(self.port).ok();
        if imm.is_none() {
            a.mov(dx, u32::from(self.port))?;
        }
        a.set_label(&mut top)?;
        match (imm, self.reg) {
            (Some(p), OutReg::Al) => a.out(u32::from(p), al)?,
            (Some(p), OutReg::Ax) => a.out(u32::from(p), ax)?,
            (Some(p), OutReg::Eax) => a.out(u32::from(p), eax)?,
            (None, OutReg::Al) => a.out(dx, al)?,
            (None, OutReg::Ax) => a.out(dx, ax)?,
            (None, OutReg::Eax) => a.out(dx, eax)?,
        }
        a.hlt()?;
        a.jmp(top)
    }
}

/// The idle loop alone, at `base` (a guest that does nothing but heartbeat and halt).
pub fn idle(base: u64, idle: &Idle) -> Result<Program, IcedError> {
    Program::build(base, |a| idle.emit(a))
}
