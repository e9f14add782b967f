//! The built-in device behaviours a board file can give its `io` and `rom-device` regions.
//!
//! Its own module so that the board's CPU templates (`cpus`) and the board itself both use it
//! without using each other.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::base::access::{OpenBus, RegionOps, Unassigned};

/// Built-in device behaviours for `io` and `rom-device` regions.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OpsKind {
    /// Every access fails with a decode error (QEMU's `unassigned_mem_ops`).
    #[default]
    Unassigned,
    /// Reads return all ones, writes are ignored (QEMU's `unassigned_io_ops`).
    OpenBus,
}

/// The device behind an `ops` kind.
pub(crate) fn ops_for(kind: OpsKind) -> Arc<dyn RegionOps> {
    match kind {
        OpsKind::Unassigned => Arc::new(Unassigned),
        OpsKind::OpenBus => Arc::new(OpenBus),
    }
}
