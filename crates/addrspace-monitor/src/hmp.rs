//! HMP, QEMU's human monitor: a text command line over the same [`Backend`].
//!
//! Used by QMP's `human-monitor-command` and by the `(qemu)` prompt on the terminal (which
//! lives in the CLI). As in QEMU, the `info` commands are computed from the backend's QMP
//! replies and print exactly QEMU's text; errors print as QEMU's HMP prints them (`Error:
//! ...` for a failed command, `unknown command: '...'`, `stop|s: extraneous characters at
//! the end of line`, ...).
//!
//! `help` (or `?`), `help CMD`, `help info` and a bare `info` list a subset of QEMU's
//! commands: only those implemented here (`cont`, `device_add`, `device_del`, `help`,
//! `info`, `quit`, `stop`; `info cpus`, `hotpluggable-cpus`, `mtree`, `status`, `version`),
//! each with QEMU 10.0.2's own help line, word for word. `info mtree` takes QEMU's flags:
//! `-d` without `-f` prints the flat views with their lookup indexes, as QEMU 10.0.2 does
//! (its help line says `-d` needs `-f`; its code does not), and `-o` the regions' owners.

use serde_json::{Map, Value};

use crate::command::{Command, MtreeOptions, Parsed};
use crate::error::QmpError;
use crate::hmp_parse::{self, Line};
use crate::session::version;
use crate::Backend;

/// What an HMP line printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HmpOutput {
    /// The text, lines ending in `"\n"` (QMP's `human-monitor-command` turns them into
    /// `"\r\n"`, as QEMU's monitor output does).
    pub text: String,
    /// The line was `quit`: the backend has been told to quit; a prompt should end.
    pub quit: bool,
}

impl HmpOutput {
    fn text(text: impl Into<String>) -> HmpOutput {
        HmpOutput {
            text: text.into(),
            quit: false,
        }
    }
}

/// Whether the machine has a CPU with index `index` (for `cpu-index`).
pub fn cpu_exists(backend: &dyn Backend, index: i64) -> bool {
    cpus(backend)
        .map(|cpus| cpus.iter().any(|c| c["cpu-index"].as_i64() == Some(index)))
        .unwrap_or(false)
}

fn cpus(backend: &dyn Backend) -> Result<Vec<Value>, QmpError> {
    match backend.execute(&Command::QueryCpusFast)? {
        Value::Array(cpus) => Ok(cpus),
        _ => Ok(Vec::new()),
    }
}

/// HMP's way of reporting a failed command.
fn error_line(e: &QmpError) -> String {
    format!("Error: {}\n", e.desc)
}

/// Runs `command` and prints nothing on success, `Error: ...` on failure.
fn run_quiet(backend: &dyn Backend, command: Command) -> HmpOutput {
    match backend.execute(&command) {
        Ok(_) => HmpOutput::default(),
        Err(e) => HmpOutput::text(error_line(&e)),
    }
}

/// Runs one HMP command line; `cpu_index` is the monitor's current CPU (`None`: the first).
pub fn run_line(backend: &dyn Backend, line: &str, cpu_index: Option<i64>) -> HmpOutput {
    let parsed = match hmp_parse::parse(line) {
        Ok(parsed) => parsed,
        Err(text) => return HmpOutput::text(text),
    };
    match parsed {
        Line::Empty => HmpOutput::default(),
        Line::Help(text) => HmpOutput::text(text),
        Line::Stop => run_quiet(backend, Command::Stop),
        Line::Cont => run_quiet(backend, Command::Cont),
        Line::Quit => HmpOutput {
            quit: true,
            ..run_quiet(backend, Command::Quit)
        },
        Line::DeviceDel(id) => run_quiet(backend, Command::DeviceDel { id }),
        Line::DeviceAdd(opts) => device_add(backend, opts),
        Line::InfoStatus => HmpOutput::text(info_status(backend)),
        Line::InfoVersion => HmpOutput::text(info_version()),
        Line::InfoCpus => HmpOutput::text(info_cpus(backend, cpu_index)),
        Line::InfoHotpluggableCpus => HmpOutput::text(info_hotpluggable_cpus(backend)),
        Line::InfoMtree(opts) => HmpOutput::text(info_mtree(backend, &opts)),
    }
}

/// `device_add`: the parsed options go through the same checks as QMP's `device_add`.
fn device_add(backend: &dyn Backend, opts: Map<String, Value>) -> HmpOutput {
    match Command::parse("device_add", &opts) {
        Ok(Parsed::Backend(Command::DeviceAdd { driver, id, props, .. })) => {
            let command = Command::DeviceAdd {
                driver,
                id,
                props,
                keyval: true,
            };
            run_quiet(backend, command)
        }
        Ok(Parsed::Backend(command)) => run_quiet(backend, command),
        Ok(_) => HmpOutput::default(),
        Err(e) => HmpOutput::text(error_line(&e)),
    }
}

fn info_status(backend: &dyn Backend) -> String {
    let status = match backend.execute(&Command::QueryStatus) {
        Ok(status) => status,
        Err(e) => return error_line(&e),
    };
    let running = status["running"].as_bool().unwrap_or(false);
    let state = status["status"].as_str().unwrap_or("");
    let mut text = format!("VM status: {}", if running { "running" } else { "paused" });
    if !running && state != "paused" {
        text.push_str(&format!(" ({state})"));
    }
    text.push('\n');
    text
}

fn info_version() -> String {
    let v = version();
    let q = &v["qemu"];
    format!(
        "{}.{}.{}{}\n",
        q["major"],
        q["minor"],
        q["micro"],
        v["package"].as_str().unwrap_or("")
    )
}

fn info_cpus(backend: &dyn Backend, cpu_index: Option<i64>) -> String {
    let cpus = match cpus(backend) {
        Ok(cpus) => cpus,
        Err(e) => return error_line(&e),
    };
    let current = cpu_index.or_else(|| cpus.first().and_then(|c| c["cpu-index"].as_i64()));
    let mut text = String::new();
    for cpu in &cpus {
        let index = cpu["cpu-index"].as_i64().unwrap_or(-1);
        let mark = if Some(index) == current { '*' } else { ' ' };
        let thread = cpu["thread-id"].as_i64().unwrap_or(0);
        text.push_str(&format!("{mark} CPU #{index}: thread_id={thread}\n"));
    }
    text
}

/// `CpuInstanceProperties` members in the order QEMU prints them.
const CPU_PROPS: &[&str] = &[
    "node-id",
    "drawer-id",
    "book-id",
    "socket-id",
    "die-id",
    "cluster-id",
    "module-id",
    "core-id",
    "thread-id",
];

fn info_hotpluggable_cpus(backend: &dyn Backend) -> String {
    let slots = match backend.execute(&Command::QueryHotpluggableCpus) {
        Ok(Value::Array(slots)) => slots,
        Ok(_) => Vec::new(),
        Err(e) => return error_line(&e),
    };
    let mut text = String::from("Hotpluggable CPUs:\n");
    for slot in &slots {
        text.push_str(&format!("  type: \"{}\"\n", slot["type"].as_str().unwrap_or("")));
        text.push_str(&format!(
            "  vcpus_count: \"{}\"\n",
            slot["vcpus-count"].as_u64().unwrap_or(0)
        ));
        if let Some(path) = slot["qom-path"].as_str() {
            text.push_str(&format!("  qom_path: \"{path}\"\n"));
        }
        text.push_str("  CPUInstance Properties:\n");
        for prop in CPU_PROPS {
            if let Some(v) = slot["props"][prop].as_u64() {
                text.push_str(&format!("    {prop}: \"{v}\"\n"));
            }
        }
    }
    text
}

fn info_mtree(backend: &dyn Backend, opts: &MtreeOptions) -> String {
    match backend.mtree(opts) {
        Ok(text) => text,
        Err(e) => error_line(&e),
    }
}
