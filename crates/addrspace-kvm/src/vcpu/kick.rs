//! Kicking a vCPU thread out of `KVM_RUN`, and raw access to its `kvm_run` page (the vCPU
//! side's only `unsafe`).
//!
//! The signal is [`kick_signal`]: the first real-time signal (`SIGRTMIN()`, as Firecracker's
//! vCPU kick; QEMU uses `SIG_IPI` = `SIGUSR1`). Its handler is installed once per process
//! without `SA_RESTART`, so a `KVM_RUN` the signal interrupts returns `EINTR`. The handler
//! also sets `kvm_run.immediate_exit` of the vCPU the interrupted thread runs (found through
//! a thread-local pointer), so a kick that lands just *before* `KVM_RUN` is not lost: the
//! next `KVM_RUN` returns `EINTR` at once. The run loop clears the flag after every `EINTR`.

use std::cell::Cell;
use std::sync::OnceLock;

use kvm_bindings::kvm_run;
use kvm_ioctls::VcpuFd;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::error::{Error, Result};

thread_local! {
    /// The `kvm_run` page of the vCPU this thread runs, while it runs one.
    static RUNNING: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The signal that kicks a vCPU thread out of `KVM_RUN` (`SIGRTMIN()`).
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // `try_with`: never panic in a signal handler (the TLS may be gone at thread exit).
    let _ = RUNNING.try_with(|r| {
        let run = r.get();
        if !run.is_null() {
            // SAFETY: `run` is set by `Armed::new` from a live `VcpuFd`'s kvm_run mapping and
            // cleared by `Armed::drop` before that `VcpuFd` can move or drop; the handler
            // runs on the thread that set it. A volatile byte store into the shared page is
            // what the kernel expects (it reads the flag on KVM_RUN entry).
            unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*run).immediate_exit), 1) };
        }
    });
}

/// Installs the kick handler (once per process).
pub fn install() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), i32>> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| register_signal_handler(kick_signal(), on_kick).map_err(|e| e.errno()));
    installed.map_err(|errno| Error::Ioctl {
        ioctl: "sigaction",
        source: std::io::Error::from_raw_os_error(errno),
    })
}

/// A vCPU fd armed for kicks on the current thread: while it exists, a kick to this thread
/// sets its `immediate_exit`. It owns the fd (the `kvm_run` mapping cannot go away under the
/// handler) and is not `Send` (the pointer lives in this thread's TLS).
pub struct Armed {
    fd: Option<VcpuFd>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Armed {
    /// Arms kicks for `fd` on the current thread.
    pub fn new(mut fd: VcpuFd) -> Armed {
        let run: *mut kvm_run = fd.get_kvm_run();
        RUNNING.with(|r| r.set(run));
        Armed {
            fd: Some(fd),
            _not_send: std::marker::PhantomData,
        }
    }

    /// The fd.
    pub fn fd(&mut self) -> &mut VcpuFd {
        self.fd.as_mut().expect("present until into_inner")
    }

    /// Disarms and gives the fd back.
    pub fn into_inner(mut self) -> VcpuFd {
        RUNNING.with(|r| r.set(std::ptr::null_mut()));
        self.fd.take().expect("present until into_inner")
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(std::ptr::null_mut()));
    }
}

/// A running thread, as `pthread_self` gives it.
#[derive(Debug, Clone, Copy)]
pub struct ThreadId(libc::pthread_t);

/// The calling thread.
pub fn current_thread() -> ThreadId {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    ThreadId(unsafe { libc::pthread_self() })
}

/// Kicks `thread` (errors are ignored: a thread that is gone needs no kick).
///
/// The caller guarantees `thread` has not returned from its start function yet (the gate
/// only kicks registered threads, which unregister before returning).
pub fn kick_thread(thread: ThreadId) {
    // SAFETY: the thread is alive (see above), so its pthread_t is valid; the signal's
    // handler is installed before any vCPU thread starts (`install` in `Vcpu::start`).
    let rc = unsafe { libc::pthread_kill(thread.0, kick_signal()) };
    if rc != 0 {
        tracing::debug!(rc, "kick failed");
    }
}

/// Gives the guest the data of the `KVM_EXIT_MMIO` read or `KVM_EXIT_IO` in that `fd`'s last
/// `KVM_RUN` returned (the exit's own slice is gone once the coalesced ring was drained).
/// Does nothing if the last exit is not such a read or `data` has not its length.
pub fn fill_read(fd: &mut VcpuFd, data: &[u8]) {
    let run = fd.get_kvm_run();
    match run.exit_reason {
        kvm_bindings::KVM_EXIT_MMIO => {
            // SAFETY: exit_reason says the union holds `mmio`, written by the kernel.
            let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
            if mmio.is_write == 0 && mmio.len as usize == data.len() && data.len() <= mmio.data.len() {
                mmio.data[..data.len()].copy_from_slice(data);
            }
        }
        kvm_bindings::KVM_EXIT_IO => {
            // SAFETY: exit_reason says the union holds `io`, written by the kernel.
            let io = unsafe { run.__bindgen_anon_1.io };
            let len = io.size as usize * io.count as usize;
            if u32::from(io.direction) != kvm_bindings::KVM_EXIT_IO_IN || len != data.len() {
                return;
            }
            let base: *mut kvm_run = run;
            // SAFETY: for KVM_EXIT_IO the kernel puts `size * count` data bytes at
            // `data_offset` inside the vCPU's mapping (KVM_GET_VCPU_MMAP_SIZE bytes, which
            // kvm-ioctls maps whole); `run` is that mapping's start and we hold `&mut` to it.
            unsafe {
                let dst = base.cast::<u8>().add(io.data_offset as usize);
                std::ptr::copy_nonoverlapping(data.as_ptr(), dst, len);
            }
        }
        _ => {}
    }
}

/// Whether a coalesced ring entry is a port write (`KVM_CAP_COALESCED_PIO`).
pub fn coalesced_is_pio(e: &kvm_bindings::kvm_coalesced_mmio) -> bool {
    // SAFETY: both fields of the union are plain u32s (`pad` or `pio`), any bits valid.
    unsafe { e.__bindgen_anon_1.pio != 0 }
}
