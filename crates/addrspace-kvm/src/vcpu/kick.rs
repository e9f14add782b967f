//! Kicking a vCPU thread out of `KVM_RUN` (the crate's only `unsafe`).
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
