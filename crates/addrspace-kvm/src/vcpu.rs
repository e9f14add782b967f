//! vCPUs: one thread per vCPU running `KVM_RUN`, its MMIO exits dispatched through **its own**
//! CPU address space and its port-I/O exits through its I/O space, pause/resume by kicking
//! the thread out of `KVM_RUN` (see [`kick_signal`]), idling on `HLT` ([`HaltPolicy`]), and
//! hot-plug with parked fds and a machine-wide stop ([`Hotplug`], [`VcpuPool`]).
//!
//! Unlike QEMU's KVM path (which dispatches every MMIO exit through `address_space_memory`),
//! an exit here goes through the CPU's `cpu-memory-N` space, so a per-CPU private region is
//! seen by its own vCPU only.

mod exits;
mod gate;
mod hotplug;
mod kick;
mod options;
mod regs;
mod thread;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use addrspace::cpu::Cpu;
use addrspace::AddressSpace;
use kvm_ioctls::VcpuFd;
use vmm_sys_util::signal::Killable;

use crate::error::{Error, Result};

use exits::ExitCounts;
pub use exits::ExitStats;
pub use gate::Gate;
pub use hotplug::{Hotplug, SlotState, VcpuPool};
pub use kick::kick_signal;
pub use options::{HaltPolicy, VcpuOptions};
pub use regs::Entry;

/// Which of a CPU's address spaces a vCPU dispatches its exits through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceIndices {
    /// The space MMIO exits go through (QEMU's `cpu->as`, index 0).
    pub memory: usize,
    /// The space port-I/O exits go through (x86's 64 KiB I/O space), if the model has one;
    /// without it an `IN` reads all-ones and an `OUT` is dropped.
    pub io: Option<usize>,
}

impl Default for SpaceIndices {
    /// Memory at index 0, I/O at index 1.
    fn default() -> SpaceIndices {
        SpaceIndices { memory: 0, io: Some(1) }
    }
}

/// Why a vCPU's run loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunEnd {
    /// The guest executed `HLT` (under [`HaltPolicy::Exit`]).
    Halted,
    /// The guest shut down (triple fault).
    Shutdown,
    /// [`Vcpu::stop`] asked it to stop.
    Stopped,
    /// KVM reported an exit the loop does not handle (`FailEntry`, `InternalError`, ...).
    Unhandled,
    /// `KVM_RUN` failed; the error was returned by [`Vcpu::wait`] / [`Vcpu::stop`] (or
    /// [`Hotplug::wait`] / [`Hotplug::unplug`]).
    Failed,
}

/// What a vCPU's thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VcpuState {
    /// Running (or about to enter) `KVM_RUN`, or idling on `HLT` under
    /// [`HaltPolicy::Idle`].
    Running,
    /// Parked by [`Vcpu::pause`] until [`Vcpu::resume`].
    Paused,
    /// The run loop ended (see [`Vcpu::stop`] for why).
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Run,
    Pause,
    Stop,
}

struct Control {
    request: Request,
    state: VcpuState,
}

/// State shared by a [`Vcpu`] handle and its thread.
struct Shared {
    control: Mutex<Control>,
    changed: Condvar,
    counts: ExitCounts,
    kicks: AtomicU64,
    halt: HaltPolicy,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Control> {
        // A poisoned lock only means a panicking thread held it; the state is plain data.
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running vCPU: its thread, and a handle to pause, resume and stop it.
///
/// ```no_run
/// use std::sync::Arc;
/// use addrspace::cpu::{Cpu, CpuModel, CpuSpaceSpec, CpuView};
/// use addrspace::Memory;
/// use addrspace_kvm::vcpu::{Entry, SpaceIndices, Vcpu};
/// use addrspace_kvm::Kvm;
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let model = CpuModel {
///     spaces: vec![CpuSpaceSpec { index: 0, prefix: "cpu-memory".into(), view: CpuView::Root(system) }],
///     tlb: false,
/// };
/// let cpu = Cpu::realize(&mem, 0, &model)?;
/// let vm = Arc::new(Kvm::open()?.raw().create_vm().map_err(|e| addrspace_kvm::Error::ioctl("KVM_CREATE_VM", e))?);
/// // ... RAM registered as memslots, guest code loaded at 0x1000 ...
/// let fd = vm.create_vcpu(0).map_err(|e| addrspace_kvm::Error::ioctl("KVM_CREATE_VCPU", e))?;
/// let idx = SpaceIndices { memory: 0, io: None };
/// let vcpu = Vcpu::start(fd, &cpu, idx, Entry::real_mode(0x1000))?;
/// vcpu.pause()?;
/// vcpu.resume();
/// let (_fd, end) = vcpu.stop()?;
/// println!("{:?}", end?); // Stopped, or the KVM_RUN error (with the fd back either way)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Vcpu {
    id: u32,
    tid: i32,
    shared: Arc<Shared>,
    /// Taken by [`Vcpu::wait`] / [`Vcpu::stop`]; a dropped `Vcpu` stops and joins it.
    thread: Option<JoinHandle<(VcpuFd, Result<RunEnd>)>>,
}

impl Vcpu {
    /// Sets `fd`'s registers to `entry` and starts its run loop on a new thread named
    /// `vcpu-N` (N = the CPU index). MMIO exits go through `cpu`'s space `spaces.memory`,
    /// port I/O through `spaces.io`.
    ///
    /// [`Error::Vcpu`] if `cpu` has no such space or the thread cannot be started; an
    /// [`Error::Ioctl`] if the registers cannot be set. On an error the fd is closed, and
    /// KVM will never create this id again in the VM: [`Hotplug::plug`] parks it instead.
    pub fn start(fd: VcpuFd, cpu: &Cpu, spaces: SpaceIndices, entry: Entry) -> Result<Vcpu> {
        Vcpu::start_with(fd, cpu, spaces, entry, VcpuOptions::default())
    }

    /// [`Vcpu::start`] with `options`: a [`HaltPolicy`], and whether the thread starts parked
    /// (then this returns once it is parked, before any guest instruction ran).
    pub fn start_with(fd: VcpuFd, cpu: &Cpu, spaces: SpaceIndices, entry: Entry, options: VcpuOptions) -> Result<Vcpu> {
        Vcpu::start_or_return(fd, cpu, spaces, entry, Arc::default(), options).map_err(|b| b.0)
    }

    /// [`Vcpu::start`], giving the fd back on failure (unless the thread could not be
    /// spawned: then it is closed with the closure).
    pub(crate) fn start_or_return(
        mut fd: VcpuFd,
        cpu: &Cpu,
        spaces: SpaceIndices,
        entry: Entry,
        gate: Arc<Gate>,
        options: VcpuOptions,
    ) -> std::result::Result<Vcpu, Box<(Error, Option<VcpuFd>)>> {
        let id = cpu.index();
        let missing = |what| Error::Vcpu { id, what };
        let Some(memory) = cpu.address_space(spaces.memory).cloned() else {
            return Err(Box::new((
                missing("the CPU has no memory space at that index"),
                Some(fd),
            )));
        };
        let io: Option<AddressSpace> = match spaces.io {
            Some(i) => match cpu.address_space(i).cloned() {
                Some(io) => Some(io),
                None => return Err(Box::new((missing("the CPU has no I/O space at that index"), Some(fd)))),
            },
            None => None,
        };
        if let Err(e) = kick::install().and_then(|()| regs::set_entry(&mut fd, &entry)) {
            return Err(Box::new((e, Some(fd))));
        }
        let shared = Arc::new(Shared {
            control: Mutex::new(Control {
                request: if options.paused { Request::Pause } else { Request::Run },
                state: VcpuState::Running,
            }),
            changed: Condvar::new(),
            counts: ExitCounts::default(),
            kicks: AtomicU64::new(0),
            halt: options.halt,
        });
        let spaces = exits::Spaces { memory, io };
        let s = shared.clone();
        let (tid_tx, tid_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("vcpu-{id}"))
            .spawn(move || {
                // SAFETY: gettid has no preconditions and cannot fail.
                let tid = unsafe { libc::gettid() };
                // The receiver waits for this send; it is gone only if `start` unwound.
                let _ = tid_tx.send(tid);
                thread::run(fd, &s, &spaces, &gate)
            })
            .map_err(|_| Box::new((missing("the vCPU thread could not be started"), None)))?;
        let mut vcpu = Vcpu {
            id,
            tid: 0,
            shared,
            thread: Some(thread),
        };
        match tid_rx.recv() {
            Ok(tid) => vcpu.tid = tid,
            // The thread died before sending: joining tells why (the fd went with it).
            Err(_) => {
                return Err(Box::new((
                    vcpu.join().err().unwrap_or(missing("the vCPU thread ended at once")),
                    None,
                )))
            }
        }
        if options.paused {
            vcpu.wait_parked();
        }
        tracing::debug!(vcpu = id, tid = vcpu.tid, paused = options.paused, "vcpu started");
        Ok(vcpu)
    }

    /// The vCPU id (the CPU index).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The Linux thread id (`gettid`) of the vCPU thread: `/proc/self/task/<tid>`, QMP's
    /// `thread-id`.
    pub fn thread_id(&self) -> i32 {
        self.tid
    }

    /// What `HLT` does on this vCPU.
    pub fn halt_policy(&self) -> HaltPolicy {
        self.shared.halt
    }

    /// What the thread is doing now.
    pub fn state(&self) -> VcpuState {
        self.shared.lock().state
    }

    /// The exits this vCPU handled so far.
    pub fn exits(&self) -> ExitStats {
        self.shared.counts.snapshot()
    }

    /// Kick signals sent to this vCPU's thread.
    pub fn kicks(&self) -> u64 {
        self.shared.kicks.load(Ordering::Relaxed)
    }

    /// Pauses the vCPU: kicks its thread out of `KVM_RUN` and returns once it is parked (or
    /// its run loop has ended). Pending MMIO/PIO of the last exit is completed first, so the
    /// guest state is consistent while paused.
    pub fn pause(&self) -> Result<()> {
        self.request_pause()?;
        self.wait_parked();
        Ok(())
    }

    /// Sets the pause request and kicks the thread, without waiting (see
    /// [`wait_parked`](Self::wait_parked)).
    pub(crate) fn request_pause(&self) -> Result<()> {
        self.request(Request::Pause)
    }

    /// Waits until the thread is parked or its loop ended.
    pub(crate) fn wait_parked(&self) {
        let mut c = self.shared.lock();
        while c.state == VcpuState::Running && c.request == Request::Pause {
            c = self.shared.changed.wait(c).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Resumes a paused vCPU (nothing if it is running or ended).
    pub fn resume(&self) {
        let mut c = self.shared.lock();
        if c.request == Request::Pause {
            c.request = Request::Run;
            self.shared.changed.notify_all();
        }
    }

    /// Waits until the run loop ends on its own (`HLT`, shutdown, an error) and gives the fd
    /// back with why it ended: the inner result is the loop's (a `KVM_RUN` error, typed),
    /// the outer one fails only if the thread panicked (the fd is then gone).
    pub fn wait(mut self) -> Result<(VcpuFd, Result<RunEnd>)> {
        self.join()
    }

    pub(crate) fn wait_keeping_stats(mut self) -> Result<(VcpuFd, Result<RunEnd>, ExitStats)> {
        let (fd, end) = self.join()?;
        Ok((fd, end, self.exits()))
    }

    fn join(&mut self) -> Result<(VcpuFd, Result<RunEnd>)> {
        let id = self.id;
        let thread = self.thread.take().ok_or(Error::Vcpu {
            id,
            what: "the vCPU thread was already joined",
        })?;
        // The fd comes back even when the loop failed: the caller parks it.
        thread.join().map_err(|_| Error::Vcpu {
            id,
            what: "the vCPU thread panicked",
        })
    }

    /// Stops the vCPU (kicks it out of `KVM_RUN`, completes pending I/O) and gives the fd
    /// back with why the loop ended ([`RunEnd::Stopped`] unless it had ended already), as
    /// [`Vcpu::wait`] does.
    pub fn stop(mut self) -> Result<(VcpuFd, Result<RunEnd>)> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(VcpuFd, Result<RunEnd>)> {
        {
            let mut c = self.shared.lock();
            if c.state != VcpuState::Ended {
                c.request = Request::Stop;
                self.shared.changed.notify_all();
            }
        }
        self.kick()?;
        self.join()
    }

    /// Sets a request and kicks the thread if it may be inside `KVM_RUN`.
    fn request(&self, request: Request) -> Result<()> {
        {
            let mut c = self.shared.lock();
            if c.state == VcpuState::Ended || c.request == Request::Stop {
                return Ok(());
            }
            c.request = request;
            // Wakes a parked thread, or one idling on HLT (it waits on the same condvar).
            self.shared.changed.notify_all();
            if c.state != VcpuState::Running {
                return Ok(());
            }
        }
        self.kick()
    }

    fn kick(&self) -> Result<()> {
        let Some(thread) = self.thread.as_ref().filter(|t| !t.is_finished()) else {
            return Ok(());
        };
        self.shared.kicks.fetch_add(1, Ordering::Relaxed);
        match thread.kill(kick_signal()) {
            Ok(()) => Ok(()),
            // The thread ended between the check and the signal.
            Err(e) if e.errno() == libc::ESRCH => Ok(()),
            Err(e) => Err(Error::Ioctl {
                ioctl: "pthread_kill",
                source: std::io::Error::from_raw_os_error(e.errno()),
            }),
        }
    }
}

impl Drop for Vcpu {
    /// Stops and joins the thread if nobody did; the fd is closed (so this id cannot be
    /// created again in this VM: use [`Hotplug`], which parks it).
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.stop_and_join() {
                tracing::warn!(vcpu = self.id, error = %e, "stopping a dropped vcpu failed");
            }
        }
    }
}

impl std::fmt::Debug for Vcpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vcpu")
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}
