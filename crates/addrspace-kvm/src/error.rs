//! Errors of the accelerator: every failed ioctl is named with its errno, never a panic.

/// What went wrong talking to KVM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {source}")]
    Open {
        /// The OS error (ENOENT: no KVM on this host; EACCES: not permitted).
        source: std::io::Error,
    },
    /// A KVM ioctl failed.
    #[error("{ioctl} failed: {source}")]
    Ioctl {
        /// The ioctl's name (`KVM_SET_USER_MEMORY_REGION`, `KVM_RUN`, ...).
        ioctl: &'static str,
        /// The OS error it returned.
        source: std::io::Error,
    },
    /// A vCPU could not be started, stopped or found (not a KVM error: those are
    /// [`Error::Ioctl`]).
    #[error("vcpu {id}: {what}")]
    Vcpu {
        /// The vCPU id (CPU index).
        id: u32,
        /// What went wrong.
        what: &'static str,
    },
    /// A CPU slot of a [`Hotplug`](crate::vcpu::Hotplug) cannot do what was asked (no such
    /// slot, empty, already plugged, realized by the board without a vCPU, ...).
    #[error("CPU slot {slot}: {what}")]
    Slot {
        /// The slot.
        slot: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A call on the memory system failed.
    #[error(transparent)]
    Memory(#[from] addrspace::Error),
}

impl Error {
    /// Wraps a failed ioctl.
    pub fn ioctl(ioctl: &'static str, e: kvm_ioctls::Error) -> Error {
        Error::Ioctl {
            ioctl,
            source: std::io::Error::from_raw_os_error(e.errno()),
        }
    }

    /// Whether this is "there is no usable `/dev/kvm` here" (ENOENT or EACCES on open): the
    /// only case in which KVM tests skip.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Open { source } if matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::EACCES)))
    }
}

/// Results of the accelerator.
pub type Result<T, E = Error> = std::result::Result<T, E>;
