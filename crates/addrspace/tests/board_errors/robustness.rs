//! Robustness: nothing a user can type makes loading panic.

use super::*;

// Robustness: nothing a user can type makes loading panic.

pub(crate) const SMALL_BOARD: &str = r#"description = "tiny"

[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  { region = "ram-lo", addr = 0 },
  { region = "rom", addr = "0xffff_0000", priority = 1 },
  { region = "io", addr = "0xe000_0000", priority = -1 },
]

[[region]]
name = "ram"
type = "ram"
size = "64K"

[[region]]
name = "ram-lo"
type = "alias"
target = "ram"
offset = "0x1000"
size = "0xf000"

[[region]]
name = "rom"
type = "rom"
size = "4K"

[[region]]
name = "io"
type = "io"
ops = "open-bus"
size = "1M"

[[address-space]]
name = "memory"
root = "system"
"#;

/// Loads `text`; if it loads, prints and exports it too. Fails the test on any panic.
pub(crate) fn never_panics(text: &str) -> Result<(), TestCaseError> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(m) = load_str(text, "fuzz.toml") {
            let _ = tree_d(&m);
            let _ = flat(&m);
            let _ = board::export(&m);
        }
    }));
    prop_assert!(outcome.is_ok(), "panicked on input:\n{text:?}");
    Ok(())
}

#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
    InsertStr(usize, String),
}

/// Bytes that matter to TOML and to the number parser.
pub(crate) fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"[]{}=\",#\n\r'^_-.0123456789xXkKmMgGeE \t\\".to_vec()),
    ]
}

pub(crate) fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), interesting_byte()).prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), interesting_byte()).prop_map(|(p, b)| Edit::Replace(p, b)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "-1",
                "2^64",
                "2^65",
                "0xffff_ffff_ffff_ffff",
                "99999999999999999999",
                "\"ram\"",
                "\"system\"",
                "é",
                "\u{1F600}",
                "\n[[region]]\n",
                "\n[[address-space]]\nname = \"x\"\nroot = \"ram-lo\"\n",
                "target = \"ram-lo\"\n",
                "{ region = \"system\" },",
                "{ region = \"ram\", addr = \"0xffff_ffff_ffff_ffff\" },",
            ])
            .prop_map(str::to_string),
        )
            .prop_map(|(p, s)| Edit::InsertStr(p, s)),
    ]
}

pub(crate) fn apply(base: &str, edits: &[Edit]) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for e in edits {
        let n = bytes.len();
        match e {
            Edit::Delete(p) if n > 0 => {
                bytes.remove(p % n);
            }
            Edit::Delete(_) => {}
            Edit::Insert(p, b) => bytes.insert(p % (n + 1), *b),
            Edit::Replace(p, b) if n > 0 => bytes[p % n] = *b,
            Edit::Replace(..) => {}
            Edit::InsertStr(p, s) => {
                let at = p % (n + 1);
                bytes.splice(at..at, s.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_small_board_loads(_x in 0..1u8) {
        let m = load_str(SMALL_BOARD, "small.toml").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(m.address_spaces.len(), 1);
    }

    #[test]
    fn mutated_boards_never_panic(edits in prop::collection::vec(edit(), 1..8)) {
        never_panics(&apply(SMALL_BOARD, &edits))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        never_panics(&text)?;
    }

    #[test]
    fn toml_like_garbage_never_panics(text in "[\\[\\]{}=\",#\n a-z0-9^_x.-]{0,300}") {
        never_panics(&text)?;
    }

    /// Random numbers in every numeric slot: reaches the semantic checks and the builder.
    #[test]
    fn random_numbers_never_panic(
        vals in prop::collection::vec(
            prop_oneof![
                Just("0".to_string()),
                Just("1".to_string()),
                Just("-1".to_string()),
                Just("\"2^64\"".to_string()),
                Just("\"2^63\"".to_string()),
                Just("\"0xffff_ffff_ffff_ffff\"".to_string()),
                Just("\"0xffff_ffff_ffff_f000\"".to_string()),
                Just("\"16E\"".to_string()),
                (0u64..0x2_0000).prop_map(|v| v.to_string()),
                any::<u64>().prop_map(|v| format!("\"{v:#x}\"")),
            ],
            8,
        ),
        prios in prop::collection::vec(any::<i32>(), 3),
    ) {
        // RAM and ROM stay small (they reserve host memory); everything else is free.
        let text = format!(
            r#"
[[region]]
name = "system"
type = "container"
size = {}
subregions = [
  {{ region = "ram-lo", addr = {}, priority = {} }},
  {{ region = "rom", addr = {}, priority = {} }},
  {{ region = "io", addr = {}, priority = {} }},
]

[[region]]
name = "ram"
type = "ram"
size = "64K"

[[region]]
name = "ram-lo"
type = "alias"
target = "ram"
offset = {}
size = {}

[[region]]
name = "rom"
type = "rom"
size = "4K"

[[region]]
name = "io"
type = "io"
size = {}
addr = {}

[[address-space]]
name = "memory"
root = "system"

[[address-space]]
name = "low"
root = "ram-lo"
"#,
            vals[0], vals[1], prios[0], vals[2], prios[1], vals[3], prios[2], vals[4], vals[5], vals[6], vals[7]
        );
        never_panics(&text)?;
    }
}
