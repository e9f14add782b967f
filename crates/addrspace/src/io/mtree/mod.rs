//! QEMU's `info mtree` text, out and in.
//!
//! Out: [`tree`] builds the `info mtree [-D]` model (address-space groups and the
//! `memory-region:` sections of alias targets) and [`flat`] the `info mtree -f` model (one
//! block per distinct flat view); each model prints as QEMU's exact text or serialises to
//! JSON, so both outputs always carry the same information. [`json`] is the machine as data
//! (`--json`): regions with ids, nested, aliases by target id, flat views by space.
//!
//! [`diff`](mod@diff) says what changed between two machines (regions matched by their place
//! in the tree, flat ranges per address space); [`lookup`](mod@lookup) says where an address
//! lands in each address space and which containers and aliases led there.
//!
//! In: [`import`] rebuilds a region graph and its address spaces from an `info mtree -D`
//! dump, with the rules of `mtree-format.md` and an optional hints file for what the text
//! does not say.
//!
//! QEMU prints blocks in hash-table order, which changes from run to run; we print them in a
//! stable order (address-space creation order). [`canonical`] puts any dump in the order-free
//! form used to compare outputs.

pub mod diff;
pub mod flat;
pub mod import;
pub mod json;
pub mod lookup;
pub mod tree;

pub use diff::{diff, MachineDiff};
pub use flat::{print_flat, FlatOptions};
pub use import::{import_dump, import_dump_with_report, plan_dump, Guess, GuessKind, Hints};
pub use json::{mtree_json, MtreeJson, PRETTY_DEPTH};
pub use lookup::{lookup, lookup_in, AliasHop, Answer, Hop, Landing, LookupError, RegionRef};
pub use tree::{print_tree, TreeOptions};

pub(crate) use crate::base::addr::hex;

/// The order-free form of an `info mtree` dump: blank-line-separated blocks sorted, with
/// `FlatView #N` numbers dropped. Two dumps of the same machine compare equal in this form
/// whatever order QEMU's hash tables printed them in.
pub fn canonical(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut blocks: Vec<String> = text
        .split("\n\n")
        .map(|b| b.trim_matches('\n'))
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.lines()
                .map(|l| match l.strip_prefix("FlatView #") {
                    Some(_) => "FlatView #".to_string(),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    blocks.sort();
    blocks.join("\n\n") + "\n"
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_ignores_block_order_and_numbers() {
        let a = "FlatView #0\n x\n\nFlatView #1\n y\n\n";
        let b = "FlatView #0\n y\n\nFlatView #1\n x\n\n";
        assert_eq!(super::canonical(a), super::canonical(b));
        assert_ne!(super::canonical(a), super::canonical("FlatView #0\n x\n"));
    }
}
