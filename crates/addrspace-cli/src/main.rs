//! The `addrspace` command-line tool.
//!
//! `addrspace demo` prints a built-in example machine; `addrspace mtree` prints any machine
//! (a board file or an imported QEMU `info mtree -D` dump) the way QEMU's `info mtree` does;
//! `addrspace board` turns a QEMU dump into a board file; `addrspace soak` plugs and unplugs
//! CPUs while readers run and checks that nothing is left behind.

mod soak;

use std::path::PathBuf;
use std::process::ExitCode;

use addrspace::mtree::{self, FlatOptions, Hints, TreeOptions};
use addrspace::{board, Machine};
use clap::{Args, Parser, Subcommand};

/// The built-in example: a QEMU-like x86 `pc` with 512 MiB of RAM.
const DEMO_BOARD: &str = include_str!("../../../boards/pc.toml");

#[derive(Parser)]
#[command(name = "addrspace", version, about = "QEMU-grade guest address spaces")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the built-in example machine (an x86 `pc`) and print `info mtree` and `info mtree -f`.
    Demo,
    /// Print a machine's memory tree like QEMU's `info mtree` (`-D`, `-f`, `--json`).
    Mtree(MtreeArgs),
    /// Convert a QEMU `info mtree -D` dump into a board file on stdout.
    Board(SourceArgs),
    /// Plug and unplug a CPU many times while reader threads run; print every live-object
    /// counter before and after and fail on any growth.
    Soak(SoakArgs),
}

#[derive(Args)]
struct SoakArgs {
    /// A board file (TOML) with CPU clusters.
    board: PathBuf,
    /// Plug/unplug cycles.
    #[arg(long, default_value_t = 10_000)]
    cycles: u64,
    /// Reader threads using the board's first address space meanwhile.
    #[arg(long, default_value_t = 2)]
    readers: usize,
}

#[derive(Args)]
struct SourceArgs {
    /// A board file (TOML).
    board: Option<PathBuf>,
    /// Import a QEMU `info mtree -D` dump instead of a board file.
    #[arg(long, value_name = "FILE")]
    from_qemu: Option<PathBuf>,
    /// Hints for the import (TOML: mmio_containers, pure_containers, readonly, address_space_order).
    #[arg(long, value_name = "HINTS.toml")]
    hints: Option<PathBuf>,
}

#[derive(Args)]
struct MtreeArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Show disabled regions (like `info mtree -D`).
    #[arg(short = 'D')]
    disabled: bool,
    /// Print the flat views (like `info mtree -f`).
    #[arg(short = 'f')]
    flat: bool,
    /// With -f, also print each view's lookup index (QEMU prints its dispatch tree here).
    #[arg(short = 'd', requires = "flat")]
    dispatch: bool,
    /// Print the same information as JSON.
    #[arg(long)]
    json: bool,
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn load(src: &SourceArgs) -> Result<Machine, String> {
    // Checked here rather than by clap, whose `requires` is skipped next to a conflicting
    // positional argument.
    match (&src.board, &src.from_qemu) {
        (Some(_), Some(_)) => return Err("give either a board file or --from-qemu DUMP, not both".into()),
        (None, None) => return Err("give a board file, or --from-qemu DUMP".into()),
        _ => {}
    }
    if src.hints.is_some() && src.from_qemu.is_none() {
        return Err("--hints applies to --from-qemu imports only".into());
    }
    if let Some(dump) = &src.from_qemu {
        let hints = match &src.hints {
            Some(h) => Hints::from_toml(&read(h)?, &h.display().to_string()).map_err(|e| e.to_string())?,
            None => Hints::default(),
        };
        return mtree::import_dump(&read(dump)?, &dump.display().to_string(), &hints).map_err(|e| e.to_string());
    }
    let path = src.board.as_ref().expect("checked above");
    board::load_file(path).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<String, String> {
    match cli.command {
        Command::Demo => {
            let m = board::load_str(DEMO_BOARD, "boards/pc.toml").map_err(|e| e.to_string())?;
            let mut out = String::from("== info mtree ==\n");
            out += &mtree::print_tree(&m.memory, &TreeOptions::default());
            out += "== info mtree -f ==\n";
            out += &mtree::print_flat(&m.memory, &FlatOptions::default());
            Ok(out)
        }
        Command::Mtree(a) => {
            let m = load(&a.source)?;
            let json = |v: serde_json::Result<String>| v.map(|s| s + "\n").map_err(|e| e.to_string());
            Ok(match (a.flat, a.json) {
                (true, false) => mtree::print_flat(&m.memory, &FlatOptions { dispatch: a.dispatch }),
                (true, true) => json(serde_json::to_string_pretty(&mtree::flat::flat_dump(
                    &m.memory,
                    &FlatOptions { dispatch: a.dispatch },
                )))?,
                (false, false) => mtree::print_tree(&m.memory, &TreeOptions { disabled: a.disabled }),
                (false, true) => json(serde_json::to_string_pretty(&mtree::tree::tree_dump(
                    &m.memory,
                    &TreeOptions { disabled: a.disabled },
                )))?,
            })
        }
        Command::Board(src) => Ok(board::export(&load(&src)?)),
        Command::Soak(a) => {
            let m = board::load_file(&a.board).map_err(|e| e.to_string())?;
            let (report, ok) = soak::soak(m, a.cycles, a.readers)?;
            if ok {
                Ok(report)
            } else {
                Err(format!("{report}live objects grew"))
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("addrspace: {e}");
            ExitCode::FAILURE
        }
    }
}
