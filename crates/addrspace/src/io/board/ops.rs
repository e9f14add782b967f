//! The built-in device behaviours a board file can give its `io` and `rom-device` regions.
//!
//! Its own module so that the board's CPU templates (`cpus`) and the board itself both use it
//! without using each other.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::base::access::{OpenBus, RegionOps, Unassigned};

/// Built-in device behaviours for `io` and `rom-device` regions (any other `ops` name asks the
/// VMM for a device model: see [`Loader`](crate::io::board::Loader)).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OpsKind {
    /// Every access fails with a decode error (QEMU's `unassigned_mem_ops`).
    #[default]
    Unassigned,
    /// Reads return all ones, writes are ignored (QEMU's `unassigned_io_ops`).
    OpenBus,
}

impl OpsKind {
    /// The built-in behaviour called `name` in a board file, if there is one.
    pub fn from_name(name: &str) -> Option<OpsKind> {
        match name {
            "unassigned" => Some(OpsKind::Unassigned),
            "open-bus" => Some(OpsKind::OpenBus),
            _ => None,
        }
    }
}

/// The device behind an `ops` kind.
pub(crate) fn ops_for(kind: OpsKind) -> Arc<dyn RegionOps> {
    match kind {
        OpsKind::Unassigned => Arc::new(Unassigned),
        OpsKind::OpenBus => Arc::new(OpenBus),
    }
}
