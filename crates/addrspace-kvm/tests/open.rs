//! `/dev/kvm` opens here (CI runs as root), or the test says why it skips.

use addrspace_kvm::Kvm;

#[test]
fn kvm_opens_or_says_why_not() {
    match Kvm::open() {
        Ok(kvm) => assert_eq!(kvm.api_version(), 12),
        Err(e) if e.is_unavailable() => eprintln!("skipped: {e} (no usable /dev/kvm on this host)"),
        Err(e) => panic!("{e}"),
    }
}
