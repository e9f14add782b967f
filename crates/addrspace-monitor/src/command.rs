//! The commands a backend runs, typed, after the monitor checked their arguments the way
//! QEMU's QAPI visitors do (same messages: "Parameter 'id' is missing", ...).

use serde_json::{Map, Value};

/// Options of HMP's `info mtree`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtreeOptions {
    /// `-f`: the flat views.
    pub flat: bool,
    /// `-d` (with `-f`): each view's lookup index.
    pub dispatch: bool,
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
    },
    /// `device_del`: a device id or a QOM path.
    DeviceDel {
        /// The id or path.
        id: String,
    },
    /// `x-query-live-objects` (ours): live-object counters as a JSON object.
    XQueryLiveObjects,
}
