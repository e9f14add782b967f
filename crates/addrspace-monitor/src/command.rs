//! The commands a backend runs, typed, after the monitor checked their arguments the way
//! QEMU's QAPI visitors do (same messages: "Parameter 'id' is missing", ...).

use serde_json::{Map, Value};

use crate::args::{id_wellformed, Args};
use crate::error::{ErrorClass, QmpError};

/// Options of HMP's `info mtree`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtreeOptions {
    /// `-f`: the flat views.
    pub flat: bool,
    /// `-d`: the flat views, each with its lookup index (with or without `-f`, as QEMU).
    pub dispatch: bool,
    /// `-o`: each region's owner.
    pub owners: bool,
    /// `-D`: disabled regions too.
    pub disabled: bool,
}

/// A command for the [`Backend`](crate::Backend).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// `query-status`: `{"status": "running"|"paused"|..., "running": bool}`.
    QueryStatus,
    /// `stop`: pause every vCPU; emits `STOP`.
    Stop,
    /// `cont`: resume; emits `RESUME`.
    Cont,
    /// `quit`: reply, then emit `SHUTDOWN` and exit.
    Quit,
    /// `query-cpus-fast`.
    QueryCpusFast,
    /// `query-hotpluggable-cpus`.
    QueryHotpluggableCpus,
    /// `device_add`: `driver`, the optional `id`, and every other property as given.
    DeviceAdd {
        /// The device type (for a CPU, the board's CPU type).
        driver: String,
        /// The device id (`/machine/peripheral/ID`), if given.
        id: Option<String>,
        /// The remaining properties (`socket-id`, `core-id`, `thread-id`, ...).
        props: Map<String, Value>,
        /// Whether the properties came as text (HMP's `key=value`, QEMU's keyval): every
        /// value is then a string, parsed as the property's type. Over QMP they are JSON
        /// and must already have the property's type (QEMU: "Invalid parameter type").
        keyval: bool,
    },
    /// `device_del`: a device id or a QOM path. `DEVICE_DELETED` (`device`: the id, if any;
    /// `path`) goes out when the unplug has completed; a backend that completes it during the
    /// command, as ours do, emits it with [`Events::emit_after_reply`](crate::Events::emit_after_reply).
    DeviceDel {
        /// The id or path.
        id: String,
    },
    /// `x-query-live-objects` (ours): live-object counters as a JSON object.
    XQueryLiveObjects,
}

/// Every command QMP offers, as `query-commands` lists them.
pub const COMMAND_NAMES: &[&str] = &[
    "qmp_capabilities",
    "query-commands",
    "query-version",
    "query-status",
    "stop",
    "cont",
    "quit",
    "query-cpus-fast",
    "query-hotpluggable-cpus",
    "device_add",
    "device_del",
    "human-monitor-command",
    "x-query-live-objects",
];

/// The capabilities `qmp_capabilities` knows (QAPI enum `QMPCapability`).
pub const KNOWN_CAPABILITIES: &[&str] = &["oob"];

/// A request after argument checking: either answered by the monitor itself or a
/// [`Command`] for the backend.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Parsed {
    /// `qmp_capabilities`, with the capabilities the client wants enabled.
    Capabilities {
        /// Values of `enable` (each a known `QMPCapability`).
        enable: Vec<String>,
    },
    /// `query-commands`.
    QueryCommands,
    /// `query-version`.
    QueryVersion,
    /// `human-monitor-command`: an HMP line run with its output captured.
    HumanMonitorCommand {
        /// The HMP command line.
        command_line: String,
        /// The CPU the HMP monitor is to consider current.
        cpu_index: Option<i64>,
    },
    /// Everything else: run by the backend.
    Backend(Command),
}

impl Command {
    /// Checks `args` for command `name` as QEMU's QAPI layer does and says what to run.
    ///
    /// Errors carry QEMU's classes and messages: `CommandNotFound` "The command foo has not
    /// been found", `GenericError` "Parameter 'id' is missing", "Invalid parameter type for
    /// 'id', expected: string", "Parameter 'foo' is unexpected", ...
    pub fn parse(name: &str, args: &Map<String, Value>) -> Result<Parsed, QmpError> {
        let mut a = Args::new(args);
        let parsed = match name {
            "qmp_capabilities" => Parsed::Capabilities {
                enable: a.optional_enum_list("enable", KNOWN_CAPABILITIES)?.unwrap_or_default(),
            },
            "query-commands" => Parsed::QueryCommands,
            "query-version" => Parsed::QueryVersion,
            "human-monitor-command" => Parsed::HumanMonitorCommand {
                command_line: a.required_str("command-line")?,
                cpu_index: a.optional_int("cpu-index")?,
            },
            "query-status" => Parsed::Backend(Command::QueryStatus),
            "stop" => Parsed::Backend(Command::Stop),
            "cont" => Parsed::Backend(Command::Cont),
            "quit" => Parsed::Backend(Command::Quit),
            "query-cpus-fast" => Parsed::Backend(Command::QueryCpusFast),
            "query-hotpluggable-cpus" => Parsed::Backend(Command::QueryHotpluggableCpus),
            "x-query-live-objects" => Parsed::Backend(Command::XQueryLiveObjects),
            "device_del" => Parsed::Backend(Command::DeviceDel {
                id: a.required_str("id")?,
            }),
            // QEMU's device_add takes any properties ('gen': false): no visitor, no
            // "unexpected" members.
            "device_add" => return device_add(args).map(Parsed::Backend),
            _ => {
                return Err(QmpError::new(
                    ErrorClass::CommandNotFound,
                    format!("The command {name} has not been found"),
                ))
            }
        };
        a.finish()?;
        Ok(parsed)
    }
}

/// `device_add`'s own checks: `driver` must be a string (QEMU 10.0 says "missing" for a
/// non-string one too); a string `id` must be an identifier (a non-string `id` is ignored,
/// as QEMU's `qdict_get_try_str` ignores it). Property types are the backend's business:
/// QEMU 10.0 keeps JSON types for QMP (`"core-id": "1"` is an error there), HMP passes
/// strings.
fn device_add(args: &Map<String, Value>) -> Result<Command, QmpError> {
    let Some(Value::String(driver)) = args.get("driver") else {
        return Err(QmpError::generic("Parameter 'driver' is missing"));
    };
    let id = match args.get("id") {
        Some(Value::String(id)) if !id_wellformed(id) => {
            return Err(QmpError::generic("Parameter 'id' expects an identifier"))
        }
        Some(Value::String(id)) => Some(id.clone()),
        _ => None,
    };
    let props = args
        .iter()
        .filter(|(k, _)| *k != "driver" && *k != "id")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Command::DeviceAdd {
        driver: driver.clone(),
        id,
        props,
        keyval: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(name: &str, args: Value) -> Result<Parsed, QmpError> {
        let Value::Object(map) = args else {
            return Err(QmpError::generic("test: not an object"));
        };
        Command::parse(name, &map)
    }

    fn desc(name: &str, args: Value) -> (ErrorClass, String) {
        let e = parse(name, args).expect_err(name);
        (e.class, e.desc)
    }

    fn generic(desc: &str) -> (ErrorClass, String) {
        (ErrorClass::GenericError, desc.to_string())
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(
            parse("qmp_capabilities", json!({})),
            Ok(Parsed::Capabilities { enable: vec![] })
        );
        assert_eq!(
            parse("qmp_capabilities", json!({"enable": ["oob"]})),
            Ok(Parsed::Capabilities {
                enable: vec!["oob".into()]
            })
        );
        assert_eq!(parse("query-commands", json!({})), Ok(Parsed::QueryCommands));
        assert_eq!(parse("query-version", json!({})), Ok(Parsed::QueryVersion));
        assert_eq!(
            parse(
                "human-monitor-command",
                json!({"command-line": "info cpus", "cpu-index": 1})
            ),
            Ok(Parsed::HumanMonitorCommand {
                command_line: "info cpus".into(),
                cpu_index: Some(1)
            })
        );
        for (name, cmd) in [
            ("query-status", Command::QueryStatus),
            ("stop", Command::Stop),
            ("cont", Command::Cont),
            ("quit", Command::Quit),
            ("query-cpus-fast", Command::QueryCpusFast),
            ("query-hotpluggable-cpus", Command::QueryHotpluggableCpus),
            ("x-query-live-objects", Command::XQueryLiveObjects),
        ] {
            assert_eq!(parse(name, json!({})), Ok(Parsed::Backend(cmd)));
            assert_eq!(desc(name, json!({"x": 1})), generic("Parameter 'x' is unexpected"));
        }
        assert_eq!(
            parse("device_del", json!({"id": "cpu1"})),
            Ok(Parsed::Backend(Command::DeviceDel { id: "cpu1".into() }))
        );
        let mut props = Map::new();
        props.insert("socket-id".into(), json!(1));
        props.insert("core-id".into(), json!("0"));
        assert_eq!(
            parse(
                "device_add",
                json!({"driver": "qemu64-x86_64-cpu", "socket-id": 1, "id": "c1", "core-id": "0"})
            ),
            Ok(Parsed::Backend(Command::DeviceAdd {
                driver: "qemu64-x86_64-cpu".into(),
                id: Some("c1".into()),
                props,
                keyval: false,
            }))
        );
        let listed: Vec<&str> = COMMAND_NAMES.to_vec();
        for name in listed {
            assert_ne!(
                parse(name, json!({})).err().map(|e| e.class),
                Some(ErrorClass::CommandNotFound),
                "{name}"
            );
        }
    }

    #[test]
    fn every_argument_error() {
        assert_eq!(
            desc("nope", json!({})),
            (
                ErrorClass::CommandNotFound,
                "The command nope has not been found".into()
            )
        );
        assert_eq!(desc("device_del", json!({})), generic("Parameter 'id' is missing"));
        assert_eq!(
            desc("device_del", json!({"id": 5})),
            generic("Invalid parameter type for 'id', expected: string")
        );
        assert_eq!(
            desc("device_del", json!({"id": "a", "force": true})),
            generic("Parameter 'force' is unexpected")
        );
        assert_eq!(
            desc("device_add", json!({"id": "c1"})),
            generic("Parameter 'driver' is missing")
        );
        assert_eq!(
            desc("device_add", json!({"driver": 3})),
            generic("Parameter 'driver' is missing")
        );
        assert_eq!(
            desc("device_add", json!({"driver": "x", "id": "9c"})),
            generic("Parameter 'id' expects an identifier")
        );
        assert_eq!(
            desc("human-monitor-command", json!({})),
            generic("Parameter 'command-line' is missing")
        );
        assert_eq!(
            desc("human-monitor-command", json!({"command-line": "x", "cpu-index": "0"})),
            generic("Invalid parameter type for 'cpu-index', expected: integer")
        );
        assert_eq!(
            desc("qmp_capabilities", json!({"enable": "oob"})),
            generic("Invalid parameter type for 'enable', expected: array")
        );
        assert_eq!(
            desc("qmp_capabilities", json!({"enable": ["bogus"]})),
            generic("Parameter 'null' does not accept value 'bogus'")
        );
    }
}
