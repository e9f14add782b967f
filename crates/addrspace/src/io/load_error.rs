//! Errors of the text readers: board files, hints files and QEMU `info mtree` dumps.
//!
//! Kept apart from the core's [`Error`], which is about calls on a [`crate::Memory`]: a load
//! error says *where in a file* something is wrong (file, line, and column for TOML), and
//! when the cause was a call on the memory system that failed (a cycle QEMU cannot render,
//! host memory), it carries that core [`Error`] too ([`LoadError::core`]).

use std::path::PathBuf;

use crate::base::error::Error;

/// Why a board file, a hints file or a QEMU dump could not be loaded.
///
/// The `Display` form starts with `file:line:column:` (TOML files) or `file:line:` (dumps),
/// then says what is wrong there; for a failed core call, that is the core error's message
/// (which is therefore not repeated as [`std::error::Error::source`]).
///
/// ```
/// use addrspace::{board, LoadError};
///
/// let err = board::load_str("[[region]]\nname = 1\n", "bad.toml").unwrap_err();
/// assert!(matches!(err, LoadError::Board { line: 2, .. }));
/// assert!(err.to_string().starts_with("bad.toml:2:"));
/// assert!(err.core().is_none()); // a mistake in the text, not a refused call
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A board description file (or a hints file: TOML too) is invalid.
    #[error("{file}:{line}:{column}: {msg}")]
    #[non_exhaustive]
    Board {
        /// The file's name, as given to the loader.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong there.
        msg: String,
        /// The core error, when a call on the memory system failed there.
        core: Option<Box<Error>>,
    },
    /// A QEMU `info mtree` dump could not be imported.
    #[error("{file}:{line}: {msg}")]
    #[non_exhaustive]
    Dump {
        /// Where the dump came from.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong there.
        msg: String,
        /// The core error, when a call on the memory system failed there.
        core: Option<Box<Error>>,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    #[non_exhaustive]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl LoadError {
    /// The core error behind this one, when a call on the memory system failed (the
    /// message already includes it).
    pub fn core(&self) -> Option<&Error> {
        match self {
            LoadError::Board { core, .. } | LoadError::Dump { core, .. } => core.as_deref(),
            LoadError::Io { .. } => None,
        }
    }

    /// The 1-based line the error is at, if it is about a place in a file.
    pub fn line(&self) -> Option<usize> {
        match self {
            LoadError::Board { line, .. } | LoadError::Dump { line, .. } => Some(*line),
            LoadError::Io { .. } => None,
        }
    }

    /// An error in a TOML file at `line`:`column`.
    pub(crate) fn board(file: &str, line: usize, column: usize, msg: String, core: Option<Error>) -> LoadError {
        LoadError::Board {
            file: file.to_string(),
            line,
            column,
            msg,
            core: core.map(Box::new),
        }
    }

    /// An error in a dump at `line`.
    pub(crate) fn dump(file: &str, line: usize, msg: String, core: Option<Error>) -> LoadError {
        LoadError::Dump {
            file: file.to_string(),
            line,
            msg,
            core: core.map(Box::new),
        }
    }
}
