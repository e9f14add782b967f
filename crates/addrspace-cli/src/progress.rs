//! The progress bar of the long-running commands (`soak`, `run`), from `indicatif` rather
//! than hand-drawn: redrawn in place on stderr when stderr is a terminal, and hidden when it
//! is not (a pipe, a file, a test capturing it), so captured output holds no progress lines
//! and no control characters.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// What the bar shows: `soak: [#####>....] 42% 4200/10000 (3s, 4s left)`.
const TEMPLATE: &str = "{prefix}: [{bar:40}] {percent:>3}% {pos}/{len} ({elapsed}, {eta} left)";

/// A bar counting `total` steps, labelled `label`, on stderr if it is a terminal. It clears
/// itself when finished or dropped (an early error return too), so what the command prints
/// next starts on a clean line.
pub(crate) fn bar(label: &str, total: u64) -> ProgressBar {
    let bar =
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_finish(ProgressFinish::AndClear);
    let style = ProgressStyle::with_template(TEMPLATE)
        .map(|s| s.progress_chars("#>."))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template parses (a bad one would silently fall back to the default style).
    #[test]
    fn template_is_valid() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }
}
