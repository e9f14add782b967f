//! `addrspace run BOARD --accel kvm --qmp unix:PATH,server=on,wait=off` / `--monitor stdio`:
//! the demo board as a long-running machine driven by a QEMU-compatible monitor. The boot
//! CPU prints a line and idles (HLT, woken by a tick, a heartbeat write per tick); CPUs are
//! hot-plugged and unplugged with `device_add` / `device_del`, paused with `stop`/`cont`, and
//! inspected with `query-*` and HMP's `info mtree`; `quit` ends the process.

mod live;
mod prompt;
mod topology;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use addrspace_kvm::guest::{self, Idle};
use addrspace_kvm::vcpu::{Entry, HaltPolicy};
use addrspace_monitor::Events;
use addrspace_monitor::{ChardevSpec, Monitor};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::demo_board::{self, attach, open_kvm, write_debug, OnKvm, LAYOUT};
use crate::run::RunError;
use live::{Config, Live, Parts, RunState};
use topology::Topology;

/// How a monitored machine is started.
pub struct ServeOptions {
    pub board: PathBuf,
    /// `--qmp` specs (QEMU's chardev syntax), any number.
    pub qmp: Vec<String>,
    /// `--monitor stdio`: the HMP prompt on the terminal.
    pub monitor: Option<String>,
    /// `--smp`: the topology (QEMU's `-smp` keys).
    pub smp: Option<String>,
    /// `--cpu`: the CPU model (its QOM type is `MODEL-x86_64-cpu`).
    pub cpu: String,
    /// `-S`: do not start the CPUs until `cont`.
    pub paused: bool,
    /// How often a halted vCPU wakes (its "timer interrupt").
    pub tick: Duration,
}

const BOOT_AT: u64 = 0x1000;
const BOOT_MSG: &[u8] = b"addrspace: boot CPU up, idling\n";
const BOOT_MSG_AT: u16 = 0x2000;
const AP_AT: u64 = 0x8000;
const AP_MSG: &[u8] = b"cpu up\n";
const AP_MSG_AT: u16 = 0x8100;
/// The heartbeat port (`boards/kvm-demo.toml`'s `heartbeat` region).
const HEARTBEAT_PORT: u16 = 0x90;

/// Runs the machine until `quit`.
pub fn serve(o: &ServeOptions) -> Result<(), RunError> {
    let kvm = open_kvm()?;
    let mut specs = Vec::new();
    for text in &o.qmp {
        specs.push(ChardevSpec::parse(text).map_err(|e| RunError::Failed(format!("--qmp {text}: {e}")))?);
    }
    match o.monitor.as_deref() {
        None | Some("stdio") => {}
        Some(other) => {
            return Err(RunError::Failed(format!(
                "--monitor {other}: only `stdio` is supported (use --qmp for sockets)"
            )))
        }
    }
    if specs.is_empty() && o.monitor.is_none() {
        return Err(RunError::Failed("give --qmp SPEC or --monitor stdio".into()));
    }

    let (mut machine, devs) = demo_board::load(&o.board)?;
    let idle = Idle::new(HEARTBEAT_PORT);
    let boot = guest::uart_print_then_idle(BOOT_AT, BOOT_MSG_AT, BOOT_MSG.len() as u16, LAYOUT.uart, &idle)?;
    let ap = guest::uart_print_then_idle(AP_AT, AP_MSG_AT, AP_MSG.len() as u16, LAYOUT.uart, &idle)?;
    write_debug(&machine, boot.base, &boot.code)?;
    write_debug(&machine, BOOT_MSG_AT.into(), BOOT_MSG)?;
    write_debug(&machine, ap.base, &ap.code)?;
    write_debug(&machine, AP_MSG_AT.into(), AP_MSG)?;

    let OnKvm {
        vm,
        slots: _slots,
        mut cpus,
    } = attach(&kvm, &mut machine)?;
    let cluster = cpus.cluster();
    let max = cluster.max_cpus();
    let plugged: Vec<usize> = (0..max).filter(|&s| cluster.cpu(s).is_some()).collect();
    if plugged.first() != Some(&0) {
        return Err(RunError::Failed(
            "the cluster `cpus` needs its boot CPU (slot 0) realized by the board (`cpus = 1` or more)".into(),
        ));
    }
    let (Ok(max32), Ok(plugged32)) = (u32::try_from(max), u32::try_from(plugged.len())) else {
        return Err(RunError::Failed(format!(
            "the cluster `cpus` has too many CPUs ({max})"
        )));
    };
    let topo = Topology::parse(o.smp.as_deref(), plugged32, max32).map_err(RunError::Failed)?;
    cpus.set_halt_policy(HaltPolicy::Idle(o.tick));

    let events = Events::default();
    let run = if o.paused {
        RunState::Prelaunch
    } else {
        RunState::Running
    };
    if o.paused {
        cpus.pause_all()?;
    }
    let ap_entry = Entry::real_mode(ap.base);
    let mut monitor_specs = Vec::new();
    let live = Arc::new(Live::new(
        Parts {
            cpus,
            vm,
            devs,
            machine,
        },
        Config {
            topo,
            cpu_type: format!("{}-x86_64-cpu", o.cpu),
            ap_entry,
            run,
        },
        events.clone(),
    ));
    let mut monitor = Monitor::new(live.clone(), events.clone());
    for spec in &specs {
        let at = monitor
            .listen(spec)
            .map_err(|e| RunError::Failed(format!("QMP: {e}")))?;
        eprintln!("addrspace: QMP monitor listening on {at}");
        monitor_specs.push(spec);
    }
    if monitor_specs.iter().any(|s| s.wait) {
        eprintln!("addrspace: waiting for a QMP client (wait=on)");
        monitor.wait_for_client();
    }
    {
        let mut s = live.lock();
        for &slot in &plugged {
            let entry = if slot == 0 {
                Entry::real_mode(boot.base)
            } else {
                ap_entry
            };
            s.cpus.start(slot, entry)?;
        }
    }
    let prompt = match o.monitor.as_deref() {
        Some("stdio") => Some(prompt::spawn(live.clone())?),
        _ => None,
    };
    // SIGINT/SIGTERM shut down as `quit` does, reported as QEMU reports them.
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| RunError::Failed(format!("signals: {e}")))?;
    let signal_handle = signals.handle();
    let on_signal = live.clone();
    let signal_thread = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            on_signal.request_quit("host-signal");
        }
    });
    let reason = live.wait_for_quit();
    tracing::debug!(reason, "shutting down");
    signal_handle.close();
    let _ = signal_thread.join();
    monitor.shutdown();
    live.shut_down();
    drop(prompt);
    Ok(())
}
