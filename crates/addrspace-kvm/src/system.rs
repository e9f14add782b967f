//! The `/dev/kvm` handle.

use crate::error::{Error, Result};

/// An open `/dev/kvm`.
pub struct Kvm {
    kvm: kvm_ioctls::Kvm,
}

impl Kvm {
    /// Opens `/dev/kvm`. [`Error::is_unavailable`] tells a host without (usable) KVM apart
    /// from a real failure.
    pub fn open() -> Result<Kvm> {
        let kvm = kvm_ioctls::Kvm::new().map_err(|e| Error::Open {
            source: std::io::Error::from_raw_os_error(e.errno()),
        })?;
        Ok(Kvm { kvm })
    }

    /// `KVM_GET_API_VERSION` (12 on every supported kernel).
    pub fn api_version(&self) -> i32 {
        self.kvm.get_api_version()
    }

    /// The underlying kvm-ioctls handle.
    pub fn raw(&self) -> &kvm_ioctls::Kvm {
        &self.kvm
    }
}
