//! Asynchronous events (`{"event": ..., "data": ..., "timestamp": ...}`), broadcast to every
//! client that finished capability negotiation.
//!
//! A backend calls [`Events::emit`] from whatever thread notices the event (a vCPU thread, a
//! command). Subscribers must not block: the monitor's subscriber only appends the line to
//! the client's bounded queue (its writer thread does the socket I/O), so a slow or dead
//! client never holds up `emit` or the other clients.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// A subscriber: gets each event as a complete JSON object (timestamp included).
pub type Subscriber = Box<dyn Fn(&Value) + Send + Sync>;

/// Identifies a subscription, for [`Events::unsubscribe`].
pub type SubscriptionId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An event held back until the reply of the command being run.
struct Deferred {
    events: Events,
    name: String,
    data: Option<Value>,
}

thread_local! {
    /// Set while a QMP command runs on this thread: events to emit after its reply.
    static AFTER_REPLY: RefCell<Option<Vec<Deferred>>> = const { RefCell::new(None) };
}

/// Runs `command` (a QMP command on the client's thread), collecting the events it asks to
/// emit after its reply; `emit_deferred` must get them once the reply is sent.
pub(crate) fn run_deferring<R>(command: impl FnOnce() -> R) -> (R, DeferredEvents) {
    let outer = AFTER_REPLY.with(|d| d.borrow_mut().replace(Vec::new()));
    let result = command();
    let held = AFTER_REPLY.with(|d| std::mem::replace(&mut *d.borrow_mut(), outer));
    (result, DeferredEvents(held.unwrap_or_default()))
}

/// Events held back by [`Events::emit_after_reply`] during one command.
#[must_use = "deferred events are lost unless emitted"]
pub(crate) struct DeferredEvents(Vec<Deferred>);

impl DeferredEvents {
    /// Emits them now (the reply has been sent), in the order they were asked for.
    pub(crate) fn emit(self) {
        for d in self.0 {
            d.events.emit(&d.name, d.data);
        }
    }
}

/// Where a backend reports events; cheap to clone.
///
/// A [`Monitor`](crate::Monitor) subscribes each client once it has negotiated; a program can
/// subscribe too (to stop when `SHUTDOWN` goes out, say).
///
/// ```
/// use std::sync::mpsc;
///
/// use addrspace_monitor::Events;
/// use serde_json::json;
///
/// let events = Events::new();
/// let (tx, rx) = mpsc::channel();
/// let id = events.subscribe(Box::new(move |event| {
///     let _ = tx.send(event.clone()); // subscribers must not block
/// }));
/// events.emit("DEVICE_DELETED", Some(json!({"device": "cpu1", "path": "/machine/peripheral/cpu1"})));
/// let event = rx.recv()?;
/// assert_eq!(event["event"], "DEVICE_DELETED");
/// assert_eq!(event["data"]["device"], "cpu1");
/// assert!(event["timestamp"]["seconds"].as_u64() > Some(0));
/// events.unsubscribe(id);
/// events.emit("STOP", None);
/// assert!(rx.try_recv().is_err());
/// # Ok::<(), mpsc::RecvError>(())
/// ```
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<(u64, Subscriber)>>>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("subscribers", &self.subscribers())
            .finish()
    }
}

/// The event object QEMU sends: `event`, `data` (omitted when `None`) and the wall-clock
/// `timestamp` (`seconds`, `microseconds` since the Unix epoch).
pub fn event_object(name: &str, data: Option<Value>, at: SystemTime) -> Value {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut timestamp = Map::new();
    timestamp.insert("seconds".into(), since.as_secs().into());
    timestamp.insert("microseconds".into(), since.subsec_micros().into());
    let mut event = Map::new();
    event.insert("event".into(), name.into());
    event.insert("timestamp".into(), Value::Object(timestamp));
    if let Some(data) = data {
        event.insert("data".into(), data);
    }
    Value::Object(event)
}

impl Events {
    /// A hub with no subscribers.
    pub fn new() -> Events {
        Events::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Subscriber)>> {
        // A panicking subscriber must not silence every later event.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Emits event `name` with `data` (QEMU omits `data` for events without members).
    pub fn emit(&self, name: &str, data: Option<Value>) {
        let event = event_object(name, data, SystemTime::now());
        tracing::debug!(event = name, "QMP event");
        for (_, subscriber) in self.lock().iter() {
            subscriber(&event);
        }
    }

    /// Emits event `name` after the reply to the QMP command running on this thread, or at
    /// once when no command is running here (the terminal's HMP prompt, a vCPU thread).
    ///
    /// For events that in QEMU come out after the command's reply although the command
    /// caused them, such as `DEVICE_DELETED` for an unplug that completes at once; events
    /// emitted with [`Events::emit`] during a command reach clients before its reply, like
    /// QEMU's `STOP` before the reply to `stop`.
    pub fn emit_after_reply(&self, name: &str, data: Option<Value>) {
        let deferred = Deferred {
            events: self.clone(),
            name: name.to_string(),
            data,
        };
        let now = AFTER_REPLY.with(|d| match d.borrow_mut().as_mut() {
            Some(held) => {
                held.push(deferred);
                None
            }
            None => Some(deferred),
        });
        if let Some(d) = now {
            self.emit(&d.name, d.data);
        }
    }

    /// Adds a subscriber; it gets every event emitted from now on, until unsubscribed.
    pub fn subscribe(&self, subscriber: Subscriber) -> SubscriptionId {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, subscriber));
        id
    }

    /// Removes a subscriber (no-op for an unknown id).
    pub fn unsubscribe(&self, id: SubscriptionId) {
        self.lock().retain(|(sub, _)| *sub != id);
    }

    /// How many subscribers there are.
    pub fn subscribers(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn event_shape_and_timestamp() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let e = event_object("DEVICE_DELETED", Some(json!({"device": "c1"})), at);
        assert_eq!(
            crate::qjson::to_string(&e),
            r#"{"timestamp": {"seconds": 1700000000, "microseconds": 123456}, "event": "DEVICE_DELETED", "data": {"device": "c1"}}"#
        );
        let e = event_object("STOP", None, at);
        assert!(e.get("data").is_none());
    }

    #[test]
    fn events_after_reply_wait_for_the_command_to_end() {
        let events = Events::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        events.subscribe(Box::new(move |e| {
            if let Ok(mut v) = sink.lock() {
                v.push(e["event"].as_str().unwrap_or("").to_string());
            }
        }));
        let names = || seen.lock().map(|v| v.join(" ")).unwrap_or_default();
        let ((), held) = run_deferring(|| {
            events.emit_after_reply("LATER", None);
            events.emit("NOW", None);
        });
        assert_eq!(names(), "NOW");
        held.emit();
        assert_eq!(names(), "NOW LATER");
        // Outside a command it is immediate.
        events.emit_after_reply("DIRECT", None);
        assert_eq!(names(), "NOW LATER DIRECT");
    }

    #[test]
    fn subscribe_emit_unsubscribe() {
        let events = Events::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let id = events.subscribe(Box::new(move |e| {
            if let Ok(mut v) = sink.lock() {
                v.push(e["event"].clone());
            }
        }));
        events.emit("STOP", None);
        events.clone().emit("RESUME", None);
        events.unsubscribe(id);
        events.emit("SHUTDOWN", Some(json!({"guest": false})));
        assert_eq!(events.subscribers(), 0);
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen, vec![json!("STOP"), json!("RESUME")]);
    }
}
