//! `--monitor stdio`: QEMU's `(qemu)` prompt on the terminal, with line editing and history
//! (rustyline), running HMP commands against the live machine.

use std::io::Write as _;
use std::sync::Arc;
use std::thread::JoinHandle;

use addrspace_monitor::hmp;
use addrspace_monitor::session::QEMU_VERSION;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::live::Live;
use crate::run::RunError;

/// Starts the prompt on its own thread; it ends at `quit` or at the end of input (the
/// machine keeps running then, as QEMU's does).
pub fn spawn(live: Arc<Live>) -> Result<JoinHandle<()>, RunError> {
    let mut editor = DefaultEditor::new().map_err(|e| RunError::Failed(format!("--monitor stdio: {e}")))?;
    std::thread::Builder::new()
        .name("hmp-stdio".into())
        .spawn(move || {
            let (major, minor, micro) = QEMU_VERSION;
            println!(
                "addrspace {} monitor (QEMU {major}.{minor}.{micro} HMP) - type 'help' for more information",
                env!("CARGO_PKG_VERSION"),
            );
            loop {
                match editor.readline("(qemu) ") {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        let out = hmp::run_line(&*live, &line, None);
                        print!("{}", out.text);
                        let _ = std::io::stdout().flush();
                        if out.quit {
                            break;
                        }
                    }
                    // Ctrl-C clears the line, as in QEMU.
                    Err(ReadlineError::Interrupted) => continue,
                    Err(_) => break,
                }
            }
        })
        .map_err(|e| RunError::Failed(format!("--monitor stdio: {e}")))
}
