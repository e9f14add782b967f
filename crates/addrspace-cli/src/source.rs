//! Where a machine comes from: a board file or a QEMU `info mtree -D` dump, told apart by
//! content, so that every command reading a map (`lookup`, `diff`, `map`) takes either.

use std::path::{Path, PathBuf};

use addrspace::mtree::{self, Guess, Hints};
use addrspace::{board, Machine};
use clap::Args;

/// A machine's source on the command line: SOURCE and `--hints`.
#[derive(Args, Clone)]
pub struct SourceArg {
    /// A board file (TOML) or a QEMU `info mtree -D` dump (`-o` too), told apart by content.
    pub source: PathBuf,
    /// For a dump, what it does not say (TOML, as `mtree --from-qemu … --hints`).
    #[arg(long, value_name = "HINTS.toml")]
    pub hints: Option<PathBuf>,
}

impl SourceArg {
    /// Builds the machine; see [`load_source`].
    pub fn load(&self) -> Result<(Machine, String), String> {
        load_source(&self.source, self.hints.as_deref(), true)
    }
}

/// What a file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// A board file.
    Board,
    /// QEMU's `info mtree` tree (what `-D` prints).
    Dump,
    /// QEMU's `info mtree -f`: flat views only, which no tree can be rebuilt from.
    FlatDump,
}

/// The machine of board file `path`, for commands that take board files only (a dump is
/// refused, saying `what` needs a board file).
pub fn load_board(path: &Path, what: &str) -> Result<Machine, String> {
    let text = read(path)?;
    let name = path.display().to_string();
    if kind_of(&text) != Kind::Board {
        return Err(format!("{name} is a QEMU `info mtree` dump: {what}"));
    }
    board_machine(&text, &name)
}

/// A board file's machine; reading a map runs no device, so a device model the board names
/// is a placeholder.
fn board_machine(text: &str, name: &str) -> Result<Machine, String> {
    let machine = board::Loader::new().placeholders(true).load_str(text, name);
    machine.map_err(|e| e.to_string())
}

/// Tells a dump from a board file by its first meaningful line: QEMU's tree starts with
/// `address-space: NAME` (or `memory-region: NAME`), its flat views with `FlatView #N`;
/// anything else is taken for a board file (whose parser then says what is wrong).
pub fn kind_of(text: &str) -> Kind {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    if first.starts_with("address-space:") || first.starts_with("memory-region:") {
        Kind::Dump
    } else if first.starts_with("FlatView #") {
        Kind::FlatDump
    } else {
        Kind::Board
    }
}

/// Reads a file, saying which one could not be read, or where it stops being UTF-8.
pub fn read(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!("{}: not UTF-8 at byte {at}", path.display())
    })
}

/// Builds the machine `path` describes (a board file or a dump, by content), with `hints`
/// for a dump; for a board file, hints are an error if `strict` (they were given for this
/// file), else ignored (one hints file given for two sources). Returns what an import had
/// to guess, as lines for stderr (empty for a board).
pub fn load_source(path: &Path, hints: Option<&Path>, strict: bool) -> Result<(Machine, String), String> {
    let text = read(path)?;
    let name = path.display().to_string();
    if text.trim().is_empty() {
        return Err(format!(
            "{name} is empty: give a board file or a QEMU `info mtree -D` dump"
        ));
    }
    match kind_of(&text) {
        Kind::Dump => load_dump(&text, &name, hints),
        Kind::FlatDump => Err(format!(
            "{name} holds `info mtree -f` output (flat views only); give the tree QEMU prints \
             with `info mtree -D` instead"
        )),
        Kind::Board if hints.is_some() && strict => Err(format!(
            "--hints applies to QEMU dumps only, and {name} is a board file"
        )),
        Kind::Board => Ok((board_machine(&text, &name)?, String::new())),
    }
}

/// Imports dump `text` (read from `name`) with the hints file `hints`, if any.
pub fn load_dump(text: &str, name: &str, hints: Option<&Path>) -> Result<(Machine, String), String> {
    let hints = match hints {
        Some(h) => Hints::from_toml(&read(h)?, &h.display().to_string()).map_err(|e| e.to_string())?,
        None => Hints::default(),
    };
    let (machine, guesses) = mtree::import_dump_with_report(text, name, &hints).map_err(|e| e.to_string())?;
    Ok((machine, report(name, &guesses)))
}

/// What an import guessed, once, compactly, with how to say it instead.
pub fn report(dump: &str, guesses: &[Guess]) -> String {
    if guesses.is_empty() {
        return String::new();
    }
    let mut s = format!("addrspace: {dump} does not say everything; the import guessed:\n");
    for g in guesses {
        s += &format!("  - {g}\n");
    }
    let keys: Vec<String> = guesses
        .iter()
        .map(|g| match g.kind.hint_key() {
            "no_disabled_regions" => "no_disabled_regions = true".to_string(),
            k => format!("{k} = [..]"),
        })
        .collect();
    let lists = keys.iter().any(|k| k.ends_with("[..]"));
    s += &format!(
        "  Say what you know with --hints FILE (TOML: {}{}),\n  \
         and compare with QEMU's `info mtree -f` using --check FILE.\n",
        keys.join(", "),
        if lists { "; an empty list means none" } else { "" }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_and_boards_are_told_apart_by_content() {
        assert_eq!(
            kind_of("\naddress-space: memory\n  0000-ffff (prio 0, i/o): io\n"),
            Kind::Dump
        );
        assert_eq!(kind_of("memory-region: pc.ram\n"), Kind::Dump);
        assert_eq!(kind_of("FlatView #0\n AS \"memory\", root: system\n"), Kind::FlatDump);
        assert_eq!(kind_of("# a board\n[[region]]\nname = \"system\"\n"), Kind::Board);
        assert_eq!(kind_of(""), Kind::Board);
    }
}
