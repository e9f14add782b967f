//! Plug / unplug / re-plug of the same vCPU id: the fd is parked, KVM refuses to create the
//! id again, and re-plug takes the parked fd back.

mod vcpu_support;

use addrspace::cpu::Cluster;
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices};
use vcpu_support::{kvm_or_skip, Board, COM1, UART};

#[test]
fn vcpu_replug_reuses_the_parked_fd() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let program = guest::uart_hello(0x1000, 0x2000, 2, UART, COM1).unwrap();
    board.load(&program, &[(0x2000, b"ok")]);
    let (vm, _slots) = board.vm(&kvm);
    // Slot 1 of a cluster starting at index 4: vCPU id 5.
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 4, 2).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    let spaces = board.mem.stats().address_spaces;

    assert_eq!(cpus.plug(1, Entry::real_mode(program.base)).unwrap().id(), 5);
    assert_eq!(
        board.mem.stats().address_spaces,
        spaces + 1,
        "cpu-memory-5 (the I/O space is shared)"
    );
    assert_eq!(cpus.wait(1).unwrap(), RunEnd::Halted);
    assert_eq!(cpus.unplug(1).unwrap(), RunEnd::Halted);
    assert_eq!(
        board.mem.stats().address_spaces,
        spaces,
        "unplug destroyed cpu-memory-5"
    );
    assert!(cpus.cluster().cpu(1).is_none());
    assert!(cpus.pool().is_parked(5));
    assert_eq!(cpus.pool().parked(), 1);

    // KVM cannot create a parked id again.
    let err = vm.fd().create_vcpu(5).map(|_| ()).unwrap_err();
    assert_eq!(err.errno(), libc::EEXIST, "KVM_CREATE_VCPU of a parked id: {err}");

    // Re-plug takes the parked fd back; the guest runs again from its entry.
    cpus.plug(1, Entry::real_mode(program.base)).unwrap();
    assert_eq!(cpus.pool().parked(), 0);
    assert_eq!(cpus.wait(1).unwrap(), RunEnd::Halted);
    assert_eq!(board.uart.bytes(), b"okok");
    assert_eq!(board.com1.bytes(), b"okok");

    // Errors are typed, not panics: plugging a plugged slot, unplugging an empty one.
    assert!(cpus.plug(1, Entry::real_mode(program.base)).is_err());
    assert!(cpus.unplug(0).is_err());
    assert!(cpus.plug(7, Entry::real_mode(program.base)).is_err());
    cpus.unplug(1).unwrap();
    assert_eq!(cpus.pool().parked(), 1);
}

#[test]
fn vcpu_pool_creates_or_unparks() {
    let Some(kvm) = kvm_or_skip() else { return };
    let vm = kvm.raw().create_vm().unwrap();
    let mut pool = addrspace_kvm::vcpu::VcpuPool::new();
    let fd = pool.take_or_create(&vm, 3).unwrap();
    pool.park(3, fd);
    let again = pool.take_or_create(&vm, 3).unwrap();
    assert_eq!(pool.parked(), 0);
    // A second create of a live id is a typed error naming the ioctl and errno.
    let err = pool.take_or_create(&vm, 3).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("KVM_CREATE_VCPU failed"), "{text}");
    match err {
        addrspace_kvm::Error::Ioctl { ioctl, source } => {
            assert_eq!((ioctl, source.raw_os_error()), ("KVM_CREATE_VCPU", Some(libc::EEXIST)));
        }
        other => panic!("unexpected error {other}"),
    }
    pool.park(3, again);
    assert_eq!(pool.parked(), 1);
}

#[test]
fn vcpu_dropping_hotplug_stops_running_vcpus() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let spin = guest::spin(0x1000, 0x3000).unwrap();
    board.load(&spin, &[]);
    let (vm, _slots) = board.vm(&kvm);
    let spaces = board.mem.stats().address_spaces;
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 2).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    cpus.plug(0, Entry::real_mode(spin.base)).unwrap();
    cpus.plug(1, Entry::real_mode(spin.base)).unwrap();
    assert_eq!(board.mem.stats().address_spaces, spaces + 2);
    drop(cpus); // stops both threads (kicked out of KVM_RUN), unrealizes both CPUs
    assert_eq!(board.mem.stats().address_spaces, spaces);
}

#[test]
fn vcpu_code_outside_ram_ends_the_loop_without_a_panic() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let (vm, _slots) = board.vm(&kvm);
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    // 0x9000 is no memslot and no device: KVM cannot fetch the instruction.
    cpus.plug(0, Entry::real_mode(0x9000)).unwrap();
    let end = cpus.wait(0);
    eprintln!("fetching from a hole: {end:?}");
    assert!(
        matches!(end, Ok(RunEnd::Unhandled) | Ok(RunEnd::Shutdown) | Err(_)),
        "{end:?}"
    );
    cpus.unplug(0).unwrap();
    assert_eq!(cpus.pool().parked(), 1);
}
