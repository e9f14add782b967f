//! The examples run as part of `cargo test`, not only build: each example file is compiled
//! into this test as a module and its `main` called, so a panic or an error in an example
//! fails the suite. (Cargo gives tests no path to example binaries; this way the test always
//! runs the example's current code; that is why their `main`s are `pub`.) The README's quick
//! start must be the example, verbatim.

#[path = "../examples/build_machine.rs"]
mod build_machine;
#[path = "../examples/device_access.rs"]
mod device_access;
#[path = "../examples/quick_start.rs"]
mod quick_start;

use std::path::Path;

/// The examples that take no command-line arguments, run one after the other: the quick
/// start checks the process-wide count of live RAM blocks, which a concurrent example would
/// change.
#[test]
fn examples_run_to_completion() {
    quick_start::main().expect("quick_start");
    build_machine::main().expect("build_machine");
    device_access::main().expect("device_access");
}

/// The first ```rust block of `## Quick start for VMM authors` in `readme`.
fn quick_start_block(readme: &str) -> Option<&str> {
    let section = &readme[readme.find("\n## Quick start for VMM authors\n")?..];
    let start = section.find("\n```rust\n")? + "\n```rust\n".len();
    let len = section[start..].find("\n```\n")? + 1;
    Some(&section[start..start + len])
}

#[test]
fn readme_quick_start_is_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).expect("README.md");
    let example = std::fs::read_to_string(root.join("examples/quick_start.rs")).expect("quick_start.rs");
    let block = quick_start_block(&readme).expect("the README has a quick start section with a ```rust block");
    if block != example {
        let first = block.lines().zip(example.lines()).position(|(a, b)| a != b);
        panic!(
            "the README's quick start differs from examples/quick_start.rs (first differing line: {:?}; \
             README {} lines, example {} lines): copy the example into the README",
            first.map(|i| i + 1),
            block.lines().count(),
            example.lines().count()
        );
    }
}
