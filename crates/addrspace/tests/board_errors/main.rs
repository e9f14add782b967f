//! Board files: every kind of mistake is reported as `LoadError::Board` at the offending line
//! with a message that says what is wrong; random garbage never panics; the shipped boards
//! reproduce QEMU's `info mtree` captures; `board::export` round-trips.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use addrspace::board::{self, load_str};
use addrspace::mtree::{self, canonical, FlatOptions, TreeOptions};
use addrspace::{LoadError, Machine};
use proptest::prelude::*;

mod check;
mod lines;
mod numbers;
mod references;
mod robustness;
mod shipped;
mod toml;
use check::*;
use shipped::{flat, tree_d};
