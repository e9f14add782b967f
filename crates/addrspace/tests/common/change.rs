//! The region changes that both the render and the commit properties generate
//! (`proptest_render`, `proptest_commit`): one definition, so that the two generators and
//! their failure logs speak of the same operations. Each property's own `Op` wraps a
//! [`Change`] next to the operations only it makes; regions are picked by [`Index`] among
//! those that exist when the change is applied.

use proptest::sample::Index;

#[derive(Debug, Clone)]
pub enum Change {
    /// Maps `child` into `parent`. `fresh`: the child is picked among the unmapped regions
    /// (other than the first one created).
    Add {
        parent: Index,
        child: Index,
        fresh: bool,
        addr: u64,
        prio: i32,
    },
    /// Unmaps `child` from its container.
    Remove {
        child: Index,
    },
    Move {
        node: Index,
        addr: u64,
    },
    Enable {
        node: Index,
        on: bool,
    },
    Readonly {
        node: Index,
        on: bool,
    },
    Nonvolatile {
        node: Index,
        on: bool,
    },
    /// Unmergeable pieces that continue each other stay apart (and make a splice give up).
    Unmergeable {
        node: Index,
        on: bool,
    },
    Romd {
        node: Index,
        on: bool,
    },
    AliasOffset {
        node: Index,
        offset: u64,
    },
    Resize {
        node: Index,
        size: u128,
    },
}
