//! The view layer: what a region graph looks like from one root, flattened.
//!
//! Flat ranges and flat views with their lookup index, layered (per-CPU) views, rendering a
//! root into ranges, splicing changed windows into an existing view, and the diff between two
//! views. Views are immutable once built; this layer reads the model and never changes it.

pub mod flatview;
pub(crate) mod layer;
pub(crate) mod patch;
pub(crate) mod range;
pub(crate) mod render;
