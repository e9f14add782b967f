//! What an import had to guess because the dump does not print it, as data: the caller
//! decides whether and how to show it (the CLI prints it once to stderr).

use std::fmt;

/// A kind of fact the dump does not print, and the hints-file key that settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GuessKind {
    /// `i/o` regions **with** subregions were taken for pure containers (their holes fall
    /// through). One with device callbacks fills its own gaps instead: list it in
    /// `mmio_containers` (x86 `io` and `rtc`).
    PureContainers,
    /// `i/o` regions **without** subregions were taken for MMIO regions (a range of their
    /// own). An empty pure container renders nothing instead: list it in `pure_containers`
    /// (arm virt's `platform bus`).
    MmioRegions,
    /// Aliases were taken as writable: `info mtree` prints an alias with its target's type,
    /// never its own read-only flag. List read-only ones in `readonly` (x86 `pam-rom`).
    WritableAliases,
    /// The dump shows no disabled region, and was taken for complete: `info mtree -D` of a
    /// machine with nothing disabled. Had it been captured without `-D`, disabled regions
    /// that leave no trace (disabled aliases, disabled leaves) would be missing, and a
    /// container that held only those would pass for an MMIO region. Capture
    /// `info mtree -D`, or say `no_disabled_regions = true`.
    NoDisabledRegions,
}

impl GuessKind {
    /// The hints-file key (TOML) that settles this kind of guess.
    pub fn hint_key(self) -> &'static str {
        match self {
            GuessKind::PureContainers => "mmio_containers",
            GuessKind::MmioRegions => "pure_containers",
            GuessKind::WritableAliases => "readonly",
            GuessKind::NoDisabledRegions => "no_disabled_regions",
        }
    }
}

/// One kind of guess and the regions it concerns: distinct names, most doubtful first
/// (regions with subregions taken for pure containers smallest first, as devices are
/// small; regions without taken for MMIO largest first, as buses and windows are large;
/// aliases in dump order), none for [`GuessKind::NoDisabledRegions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guess {
    /// What was guessed.
    pub kind: GuessKind,
    /// The regions concerned, by name (hints name regions).
    pub names: Vec<String>,
}

/// Names shown before "and N more".
const SHOWN: usize = 6;

impl fmt::Display for Guess {
    /// One compact line: what was assumed, a few of the names, and the key that settles it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.names.len();
        let one = n == 1;
        let (what, unless) = match self.kind {
            GuessKind::NoDisabledRegions => {
                return write!(
                    f,
                    "the dump shows no disabled region: taken for `info mtree -D` of a machine with nothing \
                     disabled (without -D, disabled regions would be missing, and a container left empty would \
                     pass for MMIO); capture `info mtree -D`, or say `{} = true`",
                    self.kind.hint_key()
                )
            }
            GuessKind::PureContainers => (
                if one {
                    "`i/o` region with subregions taken for a pure container"
                } else {
                    "`i/o` regions with subregions taken for pure containers"
                },
                "those whose device callbacks fill their gaps",
            ),
            GuessKind::MmioRegions => (
                if one {
                    "`i/o` region without subregions taken for MMIO"
                } else {
                    "`i/o` regions without subregions taken for MMIO"
                },
                "those that are empty pure containers",
            ),
            GuessKind::WritableAliases => (
                if one {
                    "alias taken as writable (the dump never shows an alias's read-only flag)"
                } else {
                    "aliases taken as writable (the dump never shows an alias's read-only flag)"
                },
                "the read-only ones",
            ),
        };
        let mut shown: Vec<String> = self.names.iter().take(SHOWN).map(|s| format!("`{s}`")).collect();
        if n > SHOWN {
            shown.push(format!("and {} more", n - SHOWN));
        }
        write!(
            f,
            "{n} {what}: {}; list {unless} in `{}`",
            shown.join(", "),
            self.kind.hint_key()
        )
    }
}
