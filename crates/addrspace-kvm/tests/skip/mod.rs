//! The one rule for skipping a KVM test: only when `/dev/kvm` is missing or not permitted.

use addrspace_kvm::Kvm;

/// `Kvm::open()`, or `None` (with the reason printed) where there is no usable /dev/kvm.
/// Any other failure fails the test.
pub fn kvm_or_skip() -> Option<Kvm> {
    match Kvm::open() {
        Ok(kvm) => Some(kvm),
        Err(e) if e.is_unavailable() => {
            eprintln!("skipped: {e} (no usable /dev/kvm on this host)");
            None
        }
        Err(e) => panic!("opening /dev/kvm failed: {e}"),
    }
}
