//! The QMP server: listening sockets, one [`Session`] per client, and an orderly shutdown.
//!
//! Each listener has an accept thread; each client a reader thread (it parses requests and
//! runs them on the backend, one at a time) and a writer thread (draining the client's
//! bounded queue of replies and events). Clients share nothing but the backend and the
//! event hub, so a client that stalls, floods or vanishes mid-command affects only itself.

use std::fs;
use std::io::{self, Read};
use std::net::{Shutdown, TcpListener};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::chardev::{ChardevSpec, Endpoint};
use crate::event::{Events, SubscriptionId};
use crate::outbox::Outbox;
use crate::session::{self, Session, Sink};
use crate::stream::{Listener, Stream};
use crate::Backend;

/// How long [`Monitor::shutdown`] lets clients drain their replies and events.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What can go wrong setting up a monitor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The `-qmp`/`-monitor` text is not something we understand.
    #[error("invalid monitor address '{spec}': {reason}")]
    Spec {
        /// The text as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding or listening failed.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address we tried.
        address: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A Unix socket path is taken by something that is not a socket.
    #[error("{} exists and is not a socket; not replacing it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A thread could not be started.
    #[error("cannot start a monitor thread: {0}")]
    Thread(#[source] io::Error),
}

struct Client {
    /// For shutting the connection down from outside.
    control: Stream,
    outbox: Outbox,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Client {
    fn is_finished(&self) -> bool {
        self.reader.is_finished() && self.writer.is_finished()
    }

    fn join(self) {
        for handle in [self.reader, self.writer] {
            if handle.join().is_err() {
                tracing::error!("a QMP client thread panicked");
            }
        }
    }
}

struct Shared {
    backend: Arc<dyn Backend>,
    events: Events,
    stopping: AtomicBool,
    clients: Mutex<Vec<Client>>,
    /// Clients ever connected, for [`Monitor::wait_for_client`].
    connected: Mutex<u64>,
    connected_changed: Condvar,
    next_client: AtomicU64,
}

impl Shared {
    fn clients(&self) -> MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct ListenerThread {
    thread: JoinHandle<()>,
    /// The Unix socket file to remove at shutdown.
    unix_path: Option<PathBuf>,
}

/// A QMP monitor: listeners and their clients, over one backend.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use std::net::TcpStream;
/// use std::sync::Arc;
///
/// use addrspace_monitor::{Backend, Command, Events, Monitor, MtreeOptions, QmpError};
/// use serde_json::{json, Value};
///
/// struct Machine {
///     events: Events,
/// }
///
/// impl Backend for Machine {
///     fn execute(&self, cmd: &Command) -> Result<Value, QmpError> {
///         match cmd {
///             Command::Stop => {
///                 self.events.emit("STOP", None); // before the reply, as in QEMU
///                 Ok(json!({}))
///             }
///             _ => Err(QmpError::generic("Not on this machine")),
///         }
///     }
///
///     fn mtree(&self, _opts: &MtreeOptions) -> Result<String, QmpError> {
///         Ok(String::new())
///     }
/// }
///
/// let events = Events::new();
/// let machine = Arc::new(Machine { events: events.clone() });
/// let mut monitor = Monitor::new(machine, events);
/// // Port 0: the system picks one; `listen` says which.
/// let address = monitor.listen(&"tcp:127.0.0.1:0,server=on,wait=off".parse()?)?;
///
/// let mut client = TcpStream::connect(&address)?;
/// let mut lines = BufReader::new(client.try_clone()?).lines();
/// let mut next = move || -> Result<Value, Box<dyn std::error::Error>> {
///     let line = lines.next().ok_or("connection closed")??;
///     Ok(serde_json::from_str(&line)?)
/// };
/// assert!(next()?["QMP"]["version"]["qemu"].is_object()); // the greeting
/// client.write_all(br#"{"execute": "qmp_capabilities"} {"execute": "stop", "id": "s"}"#)?;
/// assert_eq!(next()?, json!({"return": {}}));
/// assert_eq!(next()?["event"], "STOP"); // with its timestamp
/// assert_eq!(next()?, json!({"return": {}, "id": "s"}));
/// monitor.shutdown(); // the client sees end-of-file
/// assert!(next().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Monitor {
    shared: Arc<Shared>,
    listeners: Vec<ListenerThread>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("listeners", &self.listeners.len())
            .field("clients", &self.clients())
            .finish()
    }
}

impl Monitor {
    /// A monitor for `backend`; clients get the events emitted on `events`.
    pub fn new(backend: Arc<dyn Backend>, events: Events) -> Monitor {
        Monitor {
            shared: Arc::new(Shared {
                backend,
                events,
                stopping: AtomicBool::new(false),
                clients: Mutex::new(Vec::new()),
                connected: Mutex::new(0),
                connected_changed: Condvar::new(),
                next_client: AtomicU64::new(1),
            }),
            listeners: Vec::new(),
        }
    }

    /// Binds `spec` now and accepts clients from a thread. Returns the bound address: the
    /// socket path, or `HOST:PORT` with the real port (so `tcp:127.0.0.1:0` is usable).
    ///
    /// A Unix socket file left behind by an earlier run is replaced, as QEMU does; any other
    /// kind of file at the path is an error.
    pub fn listen(&mut self, spec: &ChardevSpec) -> Result<String, MonitorError> {
        let (listener, address, unix_path) = match &spec.endpoint {
            Endpoint::Unix(path) => {
                let failed = |source| MonitorError::Listen {
                    address: path.display().to_string(),
                    source,
                };
                match fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path).map_err(failed)?,
                    Ok(_) => return Err(MonitorError::NotASocket { path: path.clone() }),
                    Err(_) => {}
                }
                let listener = UnixListener::bind(path).map_err(failed)?;
                let address = path.display().to_string();
                (Listener::Unix(listener), address, Some(path.clone()))
            }
            Endpoint::Tcp { host, port } => {
                let host = if host.is_empty() { "0.0.0.0" } else { host };
                let failed = |source| MonitorError::Listen {
                    address: format!("{host}:{port}"),
                    source,
                };
                let listener = TcpListener::bind((host, *port)).map_err(failed)?;
                let address = listener.local_addr().map_err(failed)?.to_string();
                (Listener::Tcp(listener), address, None)
            }
        };
        let shared = Arc::clone(&self.shared);
        let thread = thread::Builder::new()
            .name(format!("qmp-listen {address}"))
            .spawn(move || accept_loop(&listener, &shared))
            .map_err(MonitorError::Thread)?;
        tracing::info!(%address, "QMP monitor listening");
        self.listeners.push(ListenerThread { thread, unix_path });
        Ok(address)
    }

    /// Blocks until a client has connected (at once if one already has): QEMU's `wait=on`.
    pub fn wait_for_client(&self) {
        let mut connected = self.shared.connected.lock().unwrap_or_else(|p| p.into_inner());
        while *connected == 0 && !self.shared.stopping.load(Ordering::SeqCst) {
            connected = self
                .shared
                .connected_changed
                .wait(connected)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// How many clients are connected now.
    pub fn clients(&self) -> usize {
        self.shared.clients().iter().filter(|c| !c.is_finished()).count()
    }

    /// Stops: no new clients; every command already running finishes and its reply, like
    /// every queued event, is written (clients get [`SHUTDOWN_GRACE`] to take them); then
    /// connections close, Unix socket files are removed and every thread is joined.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.connected_changed.notify_all();
        for listener in self.listeners.drain(..) {
            if listener.thread.join().is_err() {
                tracing::error!("a QMP listener thread panicked");
            }
            if let Some(path) = listener.unix_path {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove QMP socket");
                }
            }
        }
        let clients = std::mem::take(&mut *self.shared.clients());
        for client in &clients {
            // The reader sees end-of-file once its current command (if any) is done.
            let _ = client.control.shutdown(Shutdown::Read);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for client in &clients {
            if !client.outbox.wait_finished(deadline) {
                tracing::warn!("a QMP client did not take its last replies in time");
                client.outbox.abort();
            }
        }
        for client in clients {
            client.join();
        }
        tracing::info!("QMP monitor stopped");
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often an idle accept thread looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(100);

/// Joins the clients that have gone, closing the sockets kept for them.
fn reap(shared: &Shared) {
    let done: Vec<Client> = {
        let mut clients = shared.clients();
        let (done, live) = clients.drain(..).partition(Client::is_finished);
        *clients = live;
        done
    };
    done.into_iter().for_each(Client::join);
}

fn accept_loop(listener: &Listener, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        // Every tick, not only when someone connects: the last clients to leave must not
        // keep their descriptors until the next one arrives.
        reap(shared);
        match listener.readable_within(ACCEPT_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, "QMP listener poll failed");
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        }
        let stream = match listener.accept() {
            Ok(stream) => stream,
            Err(e) => {
                // Out of fds and the like: back off instead of spinning.
                tracing::warn!(error = %e, "QMP accept failed");
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        match start_client(shared, stream) {
            Ok(client) => {
                shared.clients().push(client);
                *shared.connected.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                shared.connected_changed.notify_all();
            }
            Err(e) => tracing::warn!(error = %e, "cannot start a QMP client"),
        }
    }
}

fn start_client(shared: &Arc<Shared>, stream: Stream) -> io::Result<Client> {
    let n = shared.next_client.fetch_add(1, Ordering::Relaxed);
    let name = format!("qmp-client-{n}");
    tracing::info!(client = %name, peer = %stream.peer(), "QMP client connected");
    let control = stream.try_clone()?;
    let kill = stream.try_clone()?;
    let (outbox, writer) = Outbox::start(format!("{name}-out"), stream.try_clone()?, move || {
        let _ = kill.shutdown(Shutdown::Both);
    })?;
    let session = Session::new(Arc::clone(&shared.backend));
    outbox.push_reply(session.greeting());
    let sink = ClientSink {
        outbox: outbox.clone(),
        shared: Arc::clone(shared),
        subscription: None,
    };
    let reader = thread::Builder::new()
        .name(name.clone())
        .spawn(move || read_loop(session, stream, sink, &name));
    match reader {
        Ok(reader) => Ok(Client {
            control,
            outbox,
            reader,
            writer,
        }),
        Err(e) => {
            outbox.abort();
            let _ = writer.join();
            Err(e)
        }
    }
}

fn read_loop(mut session: Session, mut stream: Stream, mut sink: ClientSink, name: &str) {
    let mut buf = vec![0u8; 64 * 1024];
    while !sink.stopping() {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => session.feed(&buf[..n], &mut sink),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(client = %name, error = %e, "QMP client read failed");
                break;
            }
        }
    }
    tracing::info!(client = %name, "QMP client disconnected");
}

/// A client's session output: replies to the outbox, events once negotiated.
///
/// Dropping it (when the reader thread ends, even by a panic in the backend) unsubscribes
/// from events and lets the writer finish, so a broken client never lingers.
struct ClientSink {
    outbox: Outbox,
    shared: Arc<Shared>,
    subscription: Option<SubscriptionId>,
}

impl Drop for ClientSink {
    fn drop(&mut self) {
        if let Some(id) = self.subscription.take() {
            self.shared.events.unsubscribe(id);
        }
        self.outbox.close();
    }
}

impl Sink for ClientSink {
    fn send(&mut self, line: String) {
        self.outbox.push_reply(line);
    }

    fn negotiated(&mut self) {
        let outbox = self.outbox.clone();
        let id = self.shared.events.subscribe(Box::new(move |event| {
            outbox.push_event(session::line(event));
        }));
        self.subscription = Some(id);
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    fn ready(&mut self) {
        self.outbox.wait_for_room();
    }
}
