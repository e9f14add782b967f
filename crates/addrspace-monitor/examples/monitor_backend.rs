//! A QEMU-compatible monitor on a machine built with the addrspace library, without KVM: RAM
//! in a `system` container and a [`Cluster`] of four CPU slots whose CPUs own a `cpu-memory-N`
//! space each. Its [`Backend`] turns `device_add`/`device_del` into plugging and unplugging
//! slots (address spaces appear and disappear), keeps a run state for `query-status`/`stop`/
//! `cont`, and answers `info mtree` with `addrspace::mtree`. The monitor crate does the rest.
//!
//! Run: `cargo run -p addrspace-monitor --example monitor_backend [SPEC]` (default
//! `unix:/tmp/addrspace-example.sock,server=on,wait=off`), then QEMU's `qmp-shell` on that
//! socket: `device_add driver=example-cpu socket-id=1 id=cpu1`, `device_del id=cpu1`, `quit`;
//! `qmp-shell -H` for HMP: `info mtree -f`, `device_add example-cpu,socket-id=2`, `info cpus`.

use std::error::Error;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView};
use addrspace::mtree::{self, FlatOptions, TreeOptions};
use addrspace::{Memory, SIZE_2_64};
use addrspace_monitor::{Backend, ChardevSpec, Command, ErrorClass, Events, Monitor, MtreeOptions, QmpError};
use serde_json::{json, Map, Value};

type Props = Map<String, Value>;

const CPU_TYPE: &str = "example-cpu"; // The QOM type `device_add` takes for our CPUs.
const SLOTS: usize = 4; // CPU slots, one per socket; slot 0 holds the boot CPU.
const DEFAULT_SPEC: &str = "unix:/tmp/addrspace-example.sock,server=on,wait=off";

/// What commands change, behind one lock (QEMU's big lock, in effect).
struct State {
    cpus: Cluster,
    /// The QOM path and `device_add` id of each hot-plugged CPU, by slot.
    devices: Vec<Option<(String, Option<String>)>>,
    running: bool,
    memory: Memory, // Last: dropped after the CPUs that use it.
}

/// The machine, as the monitor sees it. Its events go to every negotiated client.
pub struct Machine {
    state: Mutex<State>,
    events: Events,
}

fn generic(e: impl std::fmt::Display) -> QmpError {
    QmpError::generic(e.to_string())
}

impl Machine {
    /// Builds the board and realizes the boot CPU in slot 0.
    pub fn new(events: Events) -> Result<Machine, addrspace::Error> {
        let memory = Memory::new();
        let system = memory.container("system", SIZE_2_64)?;
        let ram = memory.ram("ram", 0x100_0000)?;
        memory.add_subregion(system, 0, ram)?;
        // Each CPU gets its own space, `cpu-memory-<index>`, over the system container.
        let spaces = vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::Root(system),
        }];
        let mut cpus = Cluster::new("cpus", &memory, CpuModel { spaces, tlb: true }, 0, SLOTS)?;
        cpus.plug(0)?;
        let state = Mutex::new(State {
            cpus,
            devices: vec![None; SLOTS],
            running: true,
            memory,
        });
        Ok(Machine { state, events })
    }
}

impl State {
    fn device_add(&mut self, driver: &str, id: Option<&str>, props: &Props, keyval: bool) -> Result<Value, QmpError> {
        if driver != CPU_TYPE {
            return Err(generic(format!("'{driver}' is not a valid device model name")));
        }
        // `socket-id` (the slot): a JSON number over QMP, text from HMP's `key=value` (`keyval`).
        let number = |v: &Value| if keyval { v.as_str()?.parse().ok() } else { v.as_u64() };
        let Some(socket) = props.get("socket-id").and_then(number) else {
            return Err(generic("CPU socket-id is not set or not a number"));
        };
        // The cluster refuses a slot it does not have, or one that has a CPU.
        let slot = usize::try_from(socket).map_err(generic)?;
        if let Some(id) = id.filter(|&id| self.devices.iter().flatten().any(|d| d.1.as_deref() == Some(id))) {
            return Err(generic(format!("Duplicate device ID '{id}'")));
        }
        // Realize: the CPU's `cpu-memory-N` space and its TLB listener are created here.
        self.cpus.plug(slot).map_err(generic)?;
        let path = match id {
            Some(id) => format!("/machine/peripheral/{id}"),
            None => format!("/machine/peripheral-anon/device[{slot}]"),
        };
        self.devices[slot] = Some((path, id.map(str::to_owned)));
        Ok(json!({}))
    }

    fn device_del(&mut self, name: &str) -> Result<Value, QmpError> {
        // By id or QOM path (the boot CPU was not hot-plugged: not found); returns the event.
        let is = |d: &(String, Option<String>)| d.0 == name || d.1.as_deref() == Some(name);
        let Some(slot) = self.devices.iter().position(|d| d.as_ref().is_some_and(is)) else {
            let missing = format!("Device '{name}' not found");
            return Err(QmpError::new(ErrorClass::DeviceNotFound, missing));
        };
        // No guest ACPI eject to wait for (QEMU waits): the CPU and its address space go now.
        self.cpus.unplug(slot).map_err(generic)?;
        Ok(match self.devices[slot].take() {
            Some((path, Some(id))) => json!({"device": id, "path": path}),
            Some((path, None)) => json!({"path": path}),
            None => json!({}),
        })
    }
}

impl Backend for Machine {
    fn execute(&self, cmd: &Command) -> Result<Value, QmpError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match cmd {
            Command::QueryStatus => {
                let status = if s.running { "running" } else { "paused" };
                Ok(json!({"status": status, "running": s.running}))
            }
            // Events a command causes reach clients before its reply, as in QEMU.
            Command::Stop | Command::Cont => {
                let run = matches!(cmd, Command::Cont);
                if s.running != run {
                    s.running = run;
                    self.events.emit(if run { "RESUME" } else { "STOP" }, None);
                }
                Ok(json!({}))
            }
            Command::Quit => {
                let data = json!({"guest": false, "reason": "host-qmp-quit"});
                self.events.emit("SHUTDOWN", Some(data));
                Ok(json!({}))
            }
            Command::DeviceAdd {
                driver,
                id,
                props,
                keyval,
            } => s.device_add(driver, id.as_deref(), props, *keyval),
            Command::DeviceDel { id } => {
                // As in QEMU, DEVICE_DELETED follows the command's reply.
                let data = s.device_del(id)?;
                self.events.emit_after_reply("DEVICE_DELETED", Some(data));
                Ok(json!({}))
            }
            // HMP's `info cpus`; also checks `human-monitor-command`'s `cpu-index` (qmp-shell -H).
            Command::QueryCpusFast => {
                let cpu = |index| json!({"cpu-index": index, "thread-id": 0});
                Ok(s.cpus.cpus().map(|c| cpu(c.index())).collect())
            }
            // `query-hotpluggable-cpus`, `x-query-live-objects`, ...: not on this machine.
            _ => Err(QmpError::new(ErrorClass::CommandNotFound, "Not on this machine")),
        }
    }

    /// `info mtree [-f [-d]] [-D]`: the library prints QEMU's text.
    fn mtree(&self, opts: &MtreeOptions) -> Result<String, QmpError> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut flat, mut tree) = (FlatOptions::default(), TreeOptions::default());
        (flat.dispatch, tree.disabled) = (opts.dispatch, opts.disabled);
        Ok(match opts.flat {
            true => mtree::print_flat(&s.memory, &flat),
            false => mtree::print_tree(&s.memory, &tree),
        })
    }
}

/// Builds the machine and starts its monitor on `spec` (QEMU's `-qmp` syntax). Returns the
/// monitor, the address bound (the socket path, or `HOST:PORT` with the real port), and a
/// receiver that gets `()` when a client sends `quit`.
pub fn start(spec: &str) -> Result<(Monitor, String, Receiver<()>), Box<dyn Error>> {
    let spec = ChardevSpec::parse(spec)?;
    let events = Events::new();
    let (quit, quitting) = mpsc::channel();
    // Subscribers see every event; they must not block (a channel send does not).
    events.subscribe(Box::new(move |event| {
        if event["event"] == "SHUTDOWN" {
            let _ = quit.send(());
        }
    }));
    let machine = Arc::new(Machine::new(events.clone())?);
    let mut monitor = Monitor::new(machine, events);
    let address = monitor.listen(&spec)?;
    if spec.wait {
        monitor.wait_for_client();
    }
    Ok((monitor, address, quitting))
}

fn main() -> Result<(), Box<dyn Error>> {
    let spec = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_SPEC.into());
    let (monitor, address, quitting) = start(&spec)?;
    println!("QMP monitor on {address}; `quit` stops the machine");
    let _ = quitting.recv();
    monitor.shutdown(); // Clients get their last replies and events; the socket file goes.
    Ok(())
}
