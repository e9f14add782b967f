//! The write layer: turning a transaction's changes into new views and listener events.
//!
//! The topology state behind the one lock, commit planning, building layered views,
//! propagation of changed windows, and delivery to listeners (the listener trait lives here).

pub(crate) mod commit;
pub(crate) mod commit_layers;
pub(crate) mod delivery;
pub mod listener;
pub(crate) mod propagate;
pub(crate) mod registry;
pub(crate) mod replay;
pub(crate) mod shared;
pub(crate) mod state;
pub(crate) mod update;
