//! Asynchronous events (`{"event": ..., "data": ..., "timestamp": ...}`), broadcast to every
//! client that finished capability negotiation.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A subscriber: gets each event as a complete JSON object (timestamp included).
pub type Subscriber = Box<dyn Fn(&Value) + Send + Sync>;

/// Where a backend reports events; cheap to clone.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<(u64, Subscriber)>>>);

impl Events {
    /// Emits event `name` with `data` (QEMU omits `data` for events without members).
    pub fn emit(&self, name: &str, data: Option<Value>) {
        let _ = (name, data);
        todo!("helper A")
    }
}
