//! Views shared by structurally identical roots (spec §12.6, beyond QEMU).
//!
//! QEMU shares a flat view between address spaces whose roots simplify to the same region.
//! Per-CPU roots defeat that: x86 gives every CPU its own SMM container holding an alias of
//! system memory and an alias of SMRAM, so 256 CPUs mean 256 identical copies of the system
//! view, each re-rendered on every change. Two roots render identically when they have the
//! same attributes and, child for child in precedence order, the same placement and flags and
//! the same content: the same aliased region at the same offset, or the very same region.
//! Such roots share one view, rendered from the first of them (the *representative*).
//!
//! The comparison is shallow (one level of children), which is what per-CPU wrappers look
//! like; anything deeper simply keeps its own view. `info mtree -f` still prints one view per
//! physical root, as QEMU does.

use std::collections::HashMap;

use crate::model::graph::Graph;
use crate::model::region::{Body, Node, RegionId};

/// Children past this many: not a per-CPU wrapper, no signature.
const MAX_CHILDREN: usize = 16;

/// A shallow signature: equal signatures render equal views.
pub(crate) type Signature = Vec<u128>;

/// Representative root per signature.
pub(crate) type Representatives = HashMap<Signature, RegionId>;

fn flags(n: &Node) -> u128 {
    u128::from(n.enabled)
        | u128::from(n.readonly) << 1
        | u128::from(n.nonvolatile) << 2
        | u128::from(n.unmergeable) << 3
        | u128::from(n.romd) << 4
}

fn id_bits(r: RegionId) -> u128 {
    u128::from(r.index) << 32 | u128::from(r.generation)
}

/// The signature of a container root whose children are few; `None` for anything else.
pub(crate) fn signature(g: &Graph, root: RegionId) -> Option<Signature> {
    let n = g.get(root).ok()?;
    if !matches!(n.body, Body::Container) || n.subregions.len() > MAX_CHILDREN {
        return None;
    }
    let mut sig = vec![n.size, u128::from(n.addr), flags(n)];
    for &c in &n.subregions {
        let cn = g.node(c);
        // Only aliases can be the same content in two roots: any other child is mapped in
        // this root alone, so such a root can share with nobody.
        let Body::Alias { target, offset } = cn.body else {
            return None;
        };
        let (content, offset) = (id_bits(target), offset);
        sig.extend([
            content,
            u128::from(offset),
            u128::from(cn.addr),
            cn.size,
            cn.priority as u32 as u128,
            flags(cn),
        ]);
    }
    Some(sig)
}

/// The root whose view `phys` shows: `phys` itself, or an earlier root with the same
/// signature. Extends `chain` with what the answer depends on (the children of `phys` and of
/// the representative, and the representative itself).
pub(crate) fn representative(
    g: &Graph,
    reps: &mut Representatives,
    phys: Option<RegionId>,
    chain: &mut Vec<RegionId>,
) -> Option<RegionId> {
    let k = phys?;
    let Some(sig) = signature(g, k) else { return Some(k) };
    chain.extend(g.node(k).subregions.iter().copied());
    if let Some(&r) = reps.get(&sig) {
        if r != k && signature(g, r).as_ref() == Some(&sig) {
            chain.push(r);
            chain.extend(g.node(r).subregions.iter().copied());
            return Some(r);
        }
    }
    reps.insert(sig, k);
    Some(k)
}

/// Forgets `root` as the representative of `sig` (its view is gone or re-rendered for
/// another signature), so the table only holds live representatives.
pub(crate) fn forget(reps: &mut Representatives, sig: &Signature, root: RegionId) {
    if reps.get(sig) == Some(&root) {
        reps.remove(sig);
    }
}
