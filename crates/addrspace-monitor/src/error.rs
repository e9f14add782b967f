//! QEMU's QMP error classes (`qapi/error.json`) and the error a command fails with.

use std::fmt;

/// The `class` member of a QMP error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Everything without a more specific class.
    GenericError,
    /// The command does not exist (or is not allowed before negotiation).
    CommandNotFound,
    /// `device_del` of a device that does not exist.
    DeviceNotFound,
    /// A device is not active (kept for completeness of QEMU's table).
    DeviceNotActive,
    /// KVM is missing.
    KVMMissingCap,
}

impl ErrorClass {
    /// The name QMP puts on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::KVMMissingCap => "KVMMissingCap",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed command: QEMU's class and a human-readable description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {desc}")]
pub struct QmpError {
    /// The class clients dispatch on.
    pub class: ErrorClass,
    /// What went wrong, in QEMU's words where QEMU has words for it.
    pub desc: String,
}

impl QmpError {
    /// A `GenericError`.
    pub fn generic(desc: impl Into<String>) -> QmpError {
        QmpError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    /// An error of class `class`.
    pub fn new(class: ErrorClass, desc: impl Into<String>) -> QmpError {
        QmpError {
            class,
            desc: desc.into(),
        }
    }
}
