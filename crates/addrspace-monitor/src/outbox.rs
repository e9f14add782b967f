//! A client's outgoing lines: a bounded queue drained by the client's own writer thread, so
//! that nothing outside that client ever waits on its socket.
//!
//! Nothing waits on a push: a reply is queued at once (so the events its command deferred
//! until after it go out at once, to every client), and the client's reader waits for room
//! before running the client's next request (a client that does not read its replies stalls
//! only its own requests, like QEMU suspending a monitor). A client whose queue is full when
//! an event arrives has fallen too far behind and is disconnected (logged).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// Most lines a client may have waiting to be written.
pub(crate) const QUEUE_LIMIT: usize = 4096;

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// No more lines will be queued; the writer drains what is there and stops.
    closed: bool,
    /// The writer thread has stopped.
    finished: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Cuts the connection (both directions), waking any thread blocked on the socket.
    kill: Box<dyn Fn() + Send + Sync>,
    name: String,
}

/// The sending side of a client's queue; cheap to clone.
#[derive(Clone)]
pub(crate) struct Outbox(Arc<Shared>);

impl Outbox {
    /// Starts the writer thread `name` writing to `writer`; `kill` cuts the connection.
    pub(crate) fn start(
        name: String,
        writer: impl Write + Send + 'static,
        kill: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<(Outbox, JoinHandle<()>)> {
        let outbox = Outbox(Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            kill: Box::new(kill),
            name: name.clone(),
        }));
        let drain = outbox.clone();
        let handle = thread::Builder::new()
            .name(name)
            .spawn(move || drain.write_loop(writer))?;
        Ok((outbox, handle))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a reply without waiting (the queue may pass its limit by this reply: the
    /// reader waits for room before the client's next request, [`Outbox::wait_for_room`]);
    /// `false` if the client is gone.
    pub(crate) fn push_reply(&self, line: String) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        state.queue.push_back(line);
        self.0.changed.notify_all();
        true
    }

    /// Waits until the queue has room (or the client is gone): a client's reader calls it
    /// before running its next request, so a client that does not read stalls only itself.
    pub(crate) fn wait_for_room(&self) {
        let mut state = self.lock();
        while !state.closed && state.queue.len() >= QUEUE_LIMIT {
            state = self.0.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Lines waiting for the writer.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Queues an event without waiting; a client too far behind is disconnected.
    pub(crate) fn push_event(&self, line: String) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        if state.queue.len() >= QUEUE_LIMIT {
            drop(state);
            tracing::warn!(
                client = %self.0.name,
                queued = QUEUE_LIMIT,
                "QMP client is not reading its events; disconnecting it"
            );
            self.abort();
            return false;
        }
        state.queue.push_back(line);
        self.0.changed.notify_all();
        true
    }

    /// No more lines: the writer finishes writing the queue, then stops.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.0.changed.notify_all();
    }

    /// Drops whatever is queued and cuts the connection.
    pub(crate) fn abort(&self) {
        {
            let mut state = self.lock();
            state.closed = true;
            state.queue.clear();
        }
        self.0.changed.notify_all();
        (self.0.kill)();
    }

    /// Waits until the writer has stopped, at most until `deadline`; whether it has.
    pub(crate) fn wait_finished(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        while !state.finished {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.0.changed.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    fn write_loop(&self, mut writer: impl Write) {
        loop {
            let batch: Vec<String> = {
                let mut state = self.lock();
                while state.queue.is_empty() && !state.closed {
                    state = self.0.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                if state.queue.is_empty() {
                    break;
                }
                let batch = state.queue.drain(..).collect();
                self.0.changed.notify_all();
                batch
            };
            let written = batch
                .iter()
                .try_for_each(|line| writer.write_all(line.as_bytes()))
                .and_then(|()| writer.flush());
            if let Err(e) = written {
                tracing::debug!(client = %self.0.name, error = %e, "QMP client write failed");
                let mut state = self.lock();
                state.closed = true;
                state.queue.clear();
                break;
            }
        }
        (self.0.kill)();
        self.lock().finished = true;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A writer that records, or blocks until released.
    #[derive(Clone, Default)]
    struct Pipe {
        data: Arc<Mutex<Vec<u8>>>,
        blocked: Arc<AtomicBool>,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            while self.blocked.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
            }
            self.data
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_and_close_drains() {
        let pipe = Pipe::default();
        let (outbox, writer) = Outbox::start("t".into(), pipe.clone(), || {}).expect("spawn");
        assert!(outbox.push_reply("a\r\n".into()));
        assert!(outbox.push_event("b\r\n".into()));
        outbox.close();
        assert!(!outbox.push_reply("c\r\n".into()));
        assert!(writer.join().is_ok());
        assert_eq!(pipe.data.lock().map(|d| d.clone()).unwrap_or_default(), b"a\r\nb\r\n");
    }

    #[test]
    fn a_lagging_client_is_cut_off_on_events() {
        let pipe = Pipe::default();
        pipe.blocked.store(true, Ordering::SeqCst);
        let killed = Arc::new(AtomicBool::new(false));
        let k = Arc::clone(&killed);
        let release = pipe.blocked.clone();
        let (outbox, writer) = Outbox::start("t".into(), pipe.clone(), move || {
            k.store(true, Ordering::SeqCst);
            release.store(false, Ordering::SeqCst);
        })
        .expect("spawn");
        // The writer takes at most one batch and blocks on it; the queue then fills up.
        let mut accepted = 0;
        while outbox.push_event("e\r\n".into()) {
            accepted += 1;
            assert!(accepted <= 2 * QUEUE_LIMIT + 1, "never cut off");
        }
        assert!(killed.load(Ordering::SeqCst));
        assert!(!outbox.push_reply("r\r\n".into()));
        assert!(writer.join().is_ok());
        assert!(outbox.wait_finished(Instant::now()));
    }

    /// The reply of a command whose client does not read must not wait: the events the
    /// command defers until after its reply (DEVICE_DELETED) would wait with it, for every
    /// client. The client is held back before its next request instead (`wait_for_room`).
    #[test]
    fn a_reply_to_a_full_queue_does_not_wait_the_next_request_does() {
        let pipe = Pipe::default();
        pipe.blocked.store(true, Ordering::SeqCst);
        let release = pipe.blocked.clone();
        let (outbox, writer) = Outbox::start("t".into(), pipe.clone(), move || {
            release.store(false, Ordering::SeqCst);
        })
        .expect("spawn");
        // The writer takes the first line and blocks writing it; then the queue fills up.
        assert!(outbox.push_reply("first\r\n".into()));
        while outbox.queued() > 0 {
            thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..QUEUE_LIMIT {
            assert!(outbox.push_reply("r\r\n".into()));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let o = outbox.clone();
        let pusher = thread::spawn(move || {
            let _ = tx.send(o.push_reply("late\r\n".into()));
        });
        let pushed = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(pushed, Ok(true), "push_reply waited on a full queue");
        let _ = pusher.join();
        // The next request waits for room, until the client reads (or is cut off).
        let o = outbox.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = thread::spawn(move || {
            o.wait_for_room();
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "no room, yet it went on"
        );
        pipe.blocked.store(false, Ordering::SeqCst);
        assert!(
            rx.recv_timeout(Duration::from_secs(30)).is_ok(),
            "room came, still waiting"
        );
        let _ = waiter.join();
        outbox.close();
        assert!(writer.join().is_ok());
    }
}
