//! `addrspace run BOARD --accel kvm`: boots a tiny real-mode guest on real KVM on the demo
//! board (`boards/kvm-demo.toml`), whose device models are bound here by their `ops` names,
//! then hot-plugs and unplugs a second vCPU `--cycles` times and checks that nothing grew.

use std::fmt::Write as _;
use std::path::Path;

use addrspace::Machine;
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd};
use addrspace_kvm::Vm;

use crate::demo_board::{
    attach, load, open_kvm, write_debug, OnKvm, AP_AT, AP_MESSAGE, AP_MSG_AT, BOOT_AT, DEVICE_BYTE, LAYOUT, MESSAGE,
    ROM_BYTE,
};
use crate::soak::rss_kib;

/// Exit status when `/dev/kvm` is missing or not accessible (ENOENT/EACCES).
pub const EXIT_NO_KVM: u8 = 3;

/// Why a run failed: KVM unavailable (exit 3) or anything else (exit 1).
pub enum RunError {
    NoKvm(String),
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for RunError {
    fn from(e: E) -> RunError {
        RunError::Failed(e.to_string())
    }
}

/// What must not grow across the plug/unplug cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    memslots: usize,
    vcpus: usize,
    parked: usize,
    open_fds: usize,
    address_spaces: usize,
    flatviews: usize,
}

fn counters(m: &Machine, vm: &Vm, cpus: &Hotplug) -> Counters {
    let s = m.memory.stats();
    let cluster = cpus.cluster();
    Counters {
        memslots: vm.memslots().map(|l| l.slots().len()).unwrap_or(0),
        vcpus: (0..cluster.max_cpus()).filter(|&k| cluster.cpu(k).is_some()).count(),
        parked: cpus.pool().parked(),
        open_fds: std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
        address_spaces: s.address_spaces,
        flatviews: s.flatviews,
    }
}

/// RSS growth tolerated (allocator and stack noise), KiB.
const RSS_SLACK_KIB: u64 = 2048;

/// Runs the demo; returns the report and whether nothing grew.
pub fn run(board: &Path, cycles: u64) -> Result<(String, bool), RunError> {
    let kvm = open_kvm()?;
    let (mut machine, dev) = load(board)?;
    let boot = guest::demo_boot(BOOT_AT, &LAYOUT)?;
    let ap = guest::uart_print(AP_AT.into(), AP_MSG_AT, AP_MESSAGE.len() as u16, LAYOUT.uart)?;
    write_debug(&machine, boot.base, &boot.code)?;
    write_debug(&machine, LAYOUT.msg.into(), MESSAGE)?;
    write_debug(&machine, ap.base, &ap.code)?;
    write_debug(&machine, AP_MSG_AT.into(), AP_MESSAGE)?;
    write_debug(&machine, LAYOUT.romdev.into(), &[ROM_BYTE])?;

    let OnKvm { vm, slots, mut cpus } = attach(&kvm, &mut machine)?;
    if cpus.cluster().max_cpus() < 2 {
        return Err(RunError::Failed("the cluster `cpus` needs 2 CPU slots".into()));
    }

    let mut out = String::new();
    let slot_list = |out: &mut String, when: &str| {
        let _ = writeln!(out, "memslots {when}:");
        for s in slots.slots() {
            let _ = writeln!(
                out,
                "  memslot {}: {:#07x}-{:#07x}{}",
                s.slot,
                s.gpa,
                s.gpa + s.size - 1,
                if s.readonly() { " (read-only)" } else { "" }
            );
        }
    };
    let _ = writeln!(
        out,
        "KVM API {}, {} memslots available",
        kvm.api_version(),
        vm.max_memslots()
    );
    slot_list(&mut out, "at start");

    // vCPU 0: the boot program.
    let set_region = slots.stats().set_region;
    // The boot CPU is the board's (`cpus = 1`); others are hot-plugged.
    if cpus.is_plugged(0) {
        cpus.start(0, Entry::real_mode(boot.base))?;
    } else {
        cpus.plug(0, Entry::real_mode(boot.base))?;
    }
    let end = cpus.wait(0)?;
    let text = dev.uart.take();
    for line in String::from_utf8_lossy(&text).lines() {
        let _ = writeln!(out, "uart: {line}");
    }
    let rep = dev.report.take();
    let got = |k: usize| rep.get(k).copied();
    let _ = writeln!(
        out,
        "romd: on -> {} (ROM data {ROM_BYTE:#04x}), off -> {} (device value {DEVICE_BYTE:#04x})",
        hex(got(0)),
        hex(got(1))
    );
    let bar_writes = dev.bar.writes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let bar_at = machine
        .region("bar0")
        .and_then(|r| machine.memory.region_info(r).ok())
        .map(|r| r.addr);
    let writes: Vec<String> = bar_writes.iter().map(|(o, v)| format!("{v:#04x} at +{o:#x}")).collect();
    let _ = writeln!(
        out,
        "bar: moved to {} by the guest's BAR register write, wrote [{}] through it, read back {}",
        bar_at.map(|a| format!("{a:#x}")).unwrap_or_else(|| "?".into()),
        writes.join(", "),
        hex(got(2))
    );
    let ioctls = slots.stats().set_region - set_region;
    let _ = writeln!(
        out,
        "memslot updates during the boot: {ioctls} (romd off deletes the ROM device's slot, romd on adds it back)"
    );
    let _ = writeln!(out, "vcpu 0: {end:?}");
    slot_list(&mut out, "after the boot");
    let boot_ok = end == RunEnd::Halted
        && text == MESSAGE
        && rep == [ROM_BYTE, DEVICE_BYTE, 0x42]
        && bar_writes == [(4, 0x42)]
        && bar_at == Some(u64::from(LAYOUT.bar_new));
    if !boot_ok {
        let _ = writeln!(
            out,
            "boot: FAILED (expected the message, romd {ROM_BYTE:#04x}/{DEVICE_BYTE:#04x}, bar 0x42)"
        );
    }
    let errors = slots.take_errors();
    for e in &errors {
        let _ = writeln!(out, "memslot error: {e}");
    }

    // vCPU 1: plugged, runs from the ROM, reports through the UART, unplugged; N times.
    let start = (counters(&machine, &vm, &cpus), rss_kib());
    let mut before = None;
    let mut ap_ok = 0u64;
    let t0 = std::time::Instant::now();
    let bar = crate::progress::bar("run", cycles);
    for c in 1..=cycles {
        cpus.plug(1, Entry::real_mode(ap.base))?;
        let end = cpus.wait(1)?;
        cpus.unplug(1)?;
        if end == RunEnd::Halted && dev.uart.take() == AP_MESSAGE {
            ap_ok += 1;
        }
        if c == 1 {
            // The first unplug parks vCPU 1's fd (it is never closed): measure from here.
            before = Some((counters(&machine, &vm, &cpus), rss_kib()));
        }
        bar.inc(1);
    }
    let dt = t0.elapsed();
    bar.finish_and_clear();
    // Timing varies from run to run: stderr, so stdout stays comparable.
    eprintln!(
        "run: {cycles} cycles in {:.1} ms ({:.0} µs per plug + run + unplug)",
        dt.as_secs_f64() * 1e3,
        dt.as_secs_f64() * 1e6 / cycles as f64
    );
    let _ = writeln!(
        out,
        "cpu1: {ap_ok}/{cycles} plug/run/unplug cycles reported \"cpu1 ok\" through the uart"
    );
    let after = (counters(&machine, &vm, &cpus), rss_kib());
    let mut ok = boot_ok && errors.is_empty() && ap_ok == cycles;
    if let Some((b, rss_b)) = before {
        let (a, rss_a) = after;
        let (s, rss_s) = start;
        let _ = writeln!(
            out,
            "live objects: before vCPU 1 / after cycle 1 (its fd parked) -> after cycle {cycles}:"
        );
        let rows = [
            ("memslots", s.memslots, b.memslots, a.memslots),
            ("vcpus", s.vcpus, b.vcpus, a.vcpus),
            ("parked fds", s.parked, b.parked, a.parked),
            ("open fds", s.open_fds, b.open_fds, a.open_fds),
            ("address spaces", s.address_spaces, b.address_spaces, a.address_spaces),
            ("flat views", s.flatviews, b.flatviews, a.flatviews),
        ];
        for (name, w, x, y) in rows {
            let _ = writeln!(out, "  {name}: {w} / {x} -> {y}{}", if y > x { "  GREW" } else { "" });
            ok &= y <= x;
        }
        if let (Some(w), Some(x), Some(y)) = (rss_s, rss_b, rss_a) {
            let grew = y > x + RSS_SLACK_KIB;
            let _ = writeln!(
                out,
                "  rss: {w} KiB / {x} KiB -> {y} KiB{}",
                if grew { "  GREW" } else { "" }
            );
            ok &= !grew;
        }
    }
    cpus.unplug(0)?;
    let _ = writeln!(out, "{}", if ok { "no growth" } else { "FAILED" });
    Ok((out, ok))
}

fn hex(b: Option<u8>) -> String {
    b.map(|b| format!("{b:#04x}")).unwrap_or_else(|| "nothing".into())
}
