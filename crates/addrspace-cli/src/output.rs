//! Writing a command's output: a reader that stops early (`addrspace mtree … | head`) is not
//! an error, as for any command-line tool, where `print!` would panic on the closed pipe.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout. A closed pipe ends the output quietly; another error is returned.
pub fn stdout(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(format!("cannot write the output: {e}")),
        _ => Ok(()),
    }
}
