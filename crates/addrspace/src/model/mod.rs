//! The model layer: the writer's data — regions, the region graph (and its cycle check),
//! the per-container child index and structural sharing of roots.
//!
//! No views, no listeners, no facade: it uses only [`base`](crate::base).

pub(crate) mod child_index;
pub(crate) mod graph;
pub mod region;
pub(crate) mod sharing;
pub(crate) mod slots;
