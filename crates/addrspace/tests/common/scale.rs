//! Generators of the deep and long inputs that scale tests and the `render` benchmark share:
//! a dump of nested containers, and board files nested deep or with a long alias chain.

use std::fmt::Write;

/// `depth` containers nested in each other, a RAM region at the bottom.
pub fn nested_dump(depth: usize) -> String {
    let mut s = String::from("address-space: memory\n");
    for d in 1..=depth {
        let _ = writeln!(
            s,
            "{}0000000000000000-ffffffffffffffff (prio 0, i/o): level{d}",
            "  ".repeat(d)
        );
    }
    let _ = writeln!(
        s,
        "{}0000000000000000-0000000000000fff (prio 0, ram): ram\n",
        "  ".repeat(depth + 1)
    );
    s
}

/// A board file with `depth` containers nested in each other, a RAM region at the bottom,
/// listed top-down (each container placed before what it holds is).
pub fn nested_board(depth: usize) -> String {
    let mut s = String::new();
    for d in 0..depth {
        let inner = if d + 1 < depth {
            format!("level{}", d + 1)
        } else {
            "ram".into()
        };
        let _ = writeln!(
            s,
            "[[region]]\nname = \"level{d}\"\ntype = \"container\"\nsize = \"1T\"\nsubregions = [{{ region = \"{inner}\", addr = \"0x1000\" }}]\n"
        );
    }
    s + "[[region]]\nname = \"ram\"\ntype = \"ram\"\nsize = \"4K\"\n\n[[address-space]]\nname = \"memory\"\nroot = \"level0\"\n"
}

/// A board file with an alias chain: `a0` in system, each `aK` an alias of `aK+1`.
pub fn alias_chain_board(n: usize) -> String {
    let mut s = String::from(
        "[[region]]\nname = \"system\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [{ region = \"a0\" }]\n\n",
    );
    for k in 0..n {
        let target = if k + 1 < n { format!("a{}", k + 1) } else { "ram".into() };
        let _ = writeln!(
            s,
            "[[region]]\nname = \"a{k}\"\ntype = \"alias\"\ntarget = \"{target}\"\nsize = \"4K\"\n"
        );
    }
    s + "[[region]]\nname = \"ram\"\ntype = \"ram\"\nsize = \"4K\"\n\n[[address-space]]\nname = \"memory\"\nroot = \"system\"\n"
}
