//! The running machine behind the monitor: a KVM VM on a board, its CPUs as QEMU-style
//! hot-pluggable devices (slots with topology ids, QOM paths, `device_add`/`device_del`), the
//! run state (`stop`/`cont`), and the live-object counters. It implements the monitor's
//! [`Backend`]; every command runs under one lock, so commands from several clients are
//! serialized the way QEMU's big lock serializes them.

use std::sync::{Condvar, Mutex, MutexGuard};

use addrspace::mtree::{self, FlatOptions, TreeOptions};
use addrspace::Machine;
use addrspace_kvm::vcpu::{Entry, Hotplug};
use addrspace_kvm::Vm;
use addrspace_monitor::{Backend, Command, ErrorClass, Events, MtreeOptions, QmpError};
use serde_json::{json, Map, Value};

use super::topology::{CpuProps, Topology};
use crate::demo_board::Devices;
use crate::soak::rss_kib;

/// QEMU's run states that this machine goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Started with `-S`: no vCPU has run yet.
    Prelaunch,
    Running,
    Paused,
}

impl RunState {
    fn name(self) -> &'static str {
        match self {
            RunState::Prelaunch => "prelaunch",
            RunState::Running => "running",
            RunState::Paused => "paused",
        }
    }
}

/// A plugged CPU seen as a device.
struct CpuDevice {
    /// `device_add`'s `id` (boot CPUs have none).
    id: Option<String>,
    qom_path: String,
}

/// Everything a command may change, behind one lock.
pub struct State {
    /// First: dropping it stops every vCPU before the VM and the memory go.
    pub cpus: Hotplug,
    devices: Vec<Option<CpuDevice>>,
    /// QEMU numbers devices added without an id `device[N]`, N counting up forever.
    anon: u64,
    run: RunState,
    /// Where a hot-plugged CPU starts.
    ap_entry: Entry,
    pub vm: Vm,
    pub devs: Devices,
    pub machine: Machine,
}

/// What the machine is made of.
pub struct Parts {
    pub cpus: Hotplug,
    pub vm: Vm,
    pub devs: Devices,
    pub machine: Machine,
}

/// How its CPUs look to the monitor.
pub struct Config {
    pub topo: Topology,
    /// The QOM type of its CPUs (`qemu64-x86_64-cpu`).
    pub cpu_type: String,
    /// Where a hot-plugged CPU starts.
    pub ap_entry: Entry,
    pub run: RunState,
}

/// The machine as the monitor's backend.
pub struct Live {
    state: Mutex<State>,
    events: Events,
    topo: Topology,
    cpu_type: String,
    /// Set with the reason `SHUTDOWN` reports (`host-qmp-quit`, `host-signal`).
    quit: (Mutex<Option<&'static str>>, Condvar),
}

impl Live {
    /// Wraps a machine whose boot CPUs (the slots plugged in `parts.cpus`' cluster) are
    /// started by the caller.
    pub fn new(parts: Parts, config: Config, events: Events) -> Live {
        let Parts {
            cpus,
            vm,
            devs,
            machine,
        } = parts;
        let cluster = cpus.cluster();
        let mut unattached = 0;
        let devices = (0..cluster.max_cpus())
            .map(|slot| {
                cluster.cpu(slot).map(|_| {
                    // Boot CPUs hang under /machine/unattached, numbered as created.
                    let d = CpuDevice {
                        id: None,
                        qom_path: format!("/machine/unattached/device[{unattached}]"),
                    };
                    unattached += 1;
                    d
                })
            })
            .collect();
        Live {
            state: Mutex::new(State {
                cpus,
                devices,
                anon: 0,
                run: config.run,
                ap_entry: config.ap_entry,
                vm,
                devs,
                machine,
            }),
            events,
            topo: config.topo,
            cpu_type: config.cpu_type,
            quit: (Mutex::new(None), Condvar::new()),
        }
    }

    /// The state, whoever panicked while holding it (its parts stay consistent: every
    /// change is one call into the library, which keeps its own invariants).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until a `quit` command or a signal; returns the reason `SHUTDOWN` reports.
    pub fn wait_for_quit(&self) -> &'static str {
        let mut q = self.quit.0.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(reason) = *q {
                return reason;
            }
            q = self.quit.1.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Asks the machine to shut down and emits `SHUTDOWN` (once: the first reason wins).
    /// QEMU emits it before `quit`'s reply.
    pub fn request_quit(&self, reason: &'static str) {
        let mut q = self.quit.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.is_none() {
            *q = Some(reason);
            self.events
                .emit("SHUTDOWN", Some(json!({"guest": false, "reason": reason})));
        }
        self.quit.1.notify_all();
    }

    /// Unplugs every CPU (vCPU threads stopped, fds parked, address spaces destroyed).
    pub fn shut_down(&self) {
        let mut s = self.lock();
        for slot in 0..s.devices.len() {
            if s.devices[slot].take().is_some() {
                if let Err(e) = s.cpus.unplug(slot) {
                    tracing::warn!(slot, error = %e, "unplug at exit");
                }
            }
        }
    }

    /// A `query-cpus-fast` entry.
    fn cpu_info(&self, s: &State, slot: usize, dev: &CpuDevice) -> Value {
        json!({
            "thread-id": s.cpus.thread_id(slot).unwrap_or(0),
            "props": self.topo.props(slot),
            "qom-path": dev.qom_path,
            "cpu-index": slot,
            "target": "x86_64",
        })
    }

    /// A `query-hotpluggable-cpus` entry: `qom-path` only for a plugged slot.
    fn slot_info(&self, slot: usize, dev: Option<&CpuDevice>) -> Value {
        let mut v = json!({"props": self.topo.props(slot), "vcpus-count": 1});
        if let Some(d) = dev {
            v["qom-path"] = json!(d.qom_path);
        }
        v["type"] = json!(self.cpu_type);
        v
    }

    fn status(&self, s: &State) -> Value {
        json!({"status": s.run.name(), "running": s.run == RunState::Running})
    }

    fn stop(&self, s: &mut State) -> Result<Value, QmpError> {
        if s.run == RunState::Running {
            // Even when a vCPU could not be kicked the machine is now stopped as far as
            // `Hotplug` knows (new CPUs start parked): say so, so that `cont` undoes it.
            let paused = s.cpus.pause_all();
            s.run = RunState::Paused;
            self.events.emit("STOP", None);
            paused.map_err(generic)?;
        } else {
            s.run = match s.run {
                RunState::Prelaunch => RunState::Prelaunch,
                _ => RunState::Paused,
            };
        }
        Ok(json!({}))
    }

    fn cont(&self, s: &mut State) -> Result<Value, QmpError> {
        // Like `stop` of a paused machine, `cont` of a running one does nothing, silently.
        if s.run != RunState::Running {
            s.cpus.resume_all();
            s.run = RunState::Running;
            self.events.emit("RESUME", None);
        }
        Ok(json!({}))
    }

    fn device_add(
        &self,
        s: &mut State,
        driver: &str,
        id: Option<&str>,
        props: &Map<String, Value>,
        keyval: bool,
    ) -> Result<Value, QmpError> {
        if driver != self.cpu_type {
            if driver.ends_with("-x86_64-cpu") {
                return Err(QmpError::generic(format!(
                    "Invalid CPU type, expected cpu type: '{}'",
                    self.cpu_type
                )));
            }
            return Err(QmpError::generic(format!(
                "'{driver}' is not a valid device model name"
            )));
        }
        // The monitor checked the id's syntax; uniqueness is the machine's to check.
        if let Some(id) = id {
            if s.devices.iter().flatten().any(|d| d.id.as_deref() == Some(id)) {
                return Err(QmpError::generic(format!("Duplicate device ID '{id}'")));
            }
        }
        let qom_path = match id {
            Some(id) => format!("/machine/peripheral/{id}"),
            None => {
                s.anon += 1;
                format!("/machine/peripheral-anon/device[{}]", s.anon - 1)
            }
        };
        let props = CpuProps::from_map(&self.cpu_type, props, keyval).map_err(QmpError::generic)?;
        let slot = self.topo.slot_of(&props).map_err(QmpError::generic)?;
        match s.devices.get(slot) {
            Some(None) => {}
            Some(Some(_)) => {
                let apic = self.topo.apic_id(self.topo.ids(slot));
                return Err(QmpError::generic(format!("CPU[{slot}] with APIC ID {apic} exists")));
            }
            // The topology is the cluster's (checked at start): not reached.
            None => return Err(QmpError::generic(format!("CPU slot {slot} is not on this board"))),
        }
        let entry = s.ap_entry;
        s.cpus.plug(slot, entry).map_err(generic)?;
        s.devices[slot] = Some(CpuDevice {
            id: id.map(str::to_owned),
            qom_path,
        });
        Ok(json!({}))
    }

    fn device_del(&self, s: &mut State, name: &str) -> Result<Value, QmpError> {
        let found = s.devices.iter().position(|d| {
            d.as_ref().is_some_and(|d| {
                if name.starts_with('/') {
                    d.qom_path == name
                } else {
                    d.id.as_deref() == Some(name)
                }
            })
        });
        let Some(slot) = found else {
            return Err(QmpError::new(
                ErrorClass::DeviceNotFound,
                format!("Device '{name}' not found"),
            ));
        };
        if slot == 0 {
            return Err(QmpError::generic("Boot CPU is unpluggable"));
        }
        // No guest ACPI to ask: the unplug completes now (QEMU waits for the guest's eject).
        if let Err(e) = s.cpus.unplug(slot) {
            tracing::warn!(slot, error = %e, "vcpu run loop reported an error at unplug");
        }
        let Some(dev) = s.devices[slot].take() else {
            return Ok(json!({}));
        };
        let mut data = Map::new();
        if let Some(id) = dev.id {
            data.insert("device".into(), Value::String(id));
        }
        data.insert("path".into(), Value::String(dev.qom_path));
        // After the reply, as QEMU sends it even for a device whose unplug completes during
        // the command (captured: tests/fixtures/qmp/qemu-10.0.2-q35-device-deleted.jsonl).
        self.events
            .emit_after_reply("DEVICE_DELETED", Some(Value::Object(data)));
        Ok(json!({}))
    }

    fn live_objects(&self, s: &State) -> Value {
        let st = s.machine.memory.stats();
        let cluster = s.cpus.cluster();
        let vcpus = (0..cluster.max_cpus())
            .filter(|&k| s.cpus.thread_id(k).is_some())
            .count();
        json!({
            "regions": st.regions,
            "address-spaces": st.address_spaces,
            "flatviews": st.flatviews,
            "listeners": st.listeners,
            "memslots": s.vm.memslots().map(|l| l.slots().len()).unwrap_or(0),
            "cpus": cluster.cpus().count(),
            "vcpu-threads": vcpus,
            "parked-vcpus": s.cpus.pool().parked(),
            "open-fds": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
            "threads": std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0),
            "rss-kib": rss_kib().unwrap_or(0),
            "guest-heartbeats": s.devs.heartbeats(),
        })
    }
}

fn generic(e: impl std::fmt::Display) -> QmpError {
    QmpError::generic(e.to_string())
}

impl Backend for Live {
    fn execute(&self, cmd: &Command) -> Result<Value, QmpError> {
        let mut s = self.lock();
        match cmd {
            Command::QueryStatus => Ok(self.status(&s)),
            Command::Stop => self.stop(&mut s),
            Command::Cont => self.cont(&mut s),
            Command::Quit => {
                self.request_quit("host-qmp-quit");
                Ok(json!({}))
            }
            Command::QueryCpusFast => {
                let list = (0..s.devices.len())
                    .filter_map(|slot| s.devices[slot].as_ref().map(|d| self.cpu_info(&s, slot, d)))
                    .collect();
                Ok(Value::Array(list))
            }
            Command::QueryHotpluggableCpus => {
                // QEMU lists the slots last first.
                let list = (0..self.topo.slots())
                    .rev()
                    .map(|slot| self.slot_info(slot, s.devices.get(slot).and_then(Option::as_ref)))
                    .collect();
                Ok(Value::Array(list))
            }
            Command::DeviceAdd {
                driver,
                id,
                props,
                keyval,
            } => self.device_add(&mut s, driver, id.as_deref(), props, *keyval),
            Command::DeviceDel { id } => self.device_del(&mut s, id),
            Command::XQueryLiveObjects => Ok(self.live_objects(&s)),
            other => Err(QmpError::new(
                ErrorClass::CommandNotFound,
                format!("The command {other:?} is not handled by this machine"),
            )),
        }
    }

    fn mtree(&self, opts: &MtreeOptions) -> Result<String, QmpError> {
        let s = self.lock();
        let mem = &s.machine.memory;
        // QEMU's `-d` alone prints the flat views with their dispatch trees, as `-f -d` does.
        Ok(if opts.flat || opts.dispatch {
            mtree::print_flat(
                mem,
                &FlatOptions {
                    dispatch: opts.dispatch,
                    owners: opts.owners,
                },
            )
        } else {
            mtree::print_tree(
                mem,
                &TreeOptions {
                    disabled: opts.disabled,
                    owners: opts.owners,
                },
            )
        })
    }
}
