//! The `addrspace` command-line tool.
//!
//! `addrspace demo` prints a built-in example machine; `addrspace mtree` prints any machine
//! (a board file or an imported QEMU `info mtree -D` dump) the way QEMU's `info mtree` does;
//! `addrspace board` writes a machine (a board file or a QEMU dump) as a board file;
//! `addrspace soak` plugs and unplugs CPUs while readers run and checks that nothing is left
//! behind; `addrspace run BOARD --accel kvm` boots a tiny guest on real KVM and hot-plugs a
//! vCPU many times (exit status 3 where `/dev/kvm` cannot be opened). What an import had to guess goes to stderr, once; `--check` compares the flat
//! views with a QEMU capture.

mod check;
mod demo_board;
mod diff;
mod lookup;
mod map;
mod output;
mod progress;
mod run;
mod serve;
mod soak;
mod source;

use std::path::PathBuf;
use std::process::ExitCode;

use addrspace::mtree::{self, FlatOptions, TreeOptions};
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
    /// Print a machine's memory tree like QEMU's `info mtree` (`-D`, `-f`, `-d`, `-o`), or as data (`--json`).
    Mtree(MtreeArgs),
    /// Write a machine as a board file on stdout: from a board file, or from a QEMU dump.
    ///
    /// From a board file (BOARD), everything it says is written back — regions, address
    /// spaces, description, [[cluster]] and [[cpu-root]] tables — so the result prints the
    /// same `mtree`, `mtree -D` and `mtree -f`. With --from-qemu DUMP, an `info mtree -D`
    /// dump (`-o` accepted) is converted into a board file.
    Board(BoardArgs),
    /// Plug and unplug a CPU many times while reader threads run; print every live-object
    /// counter before and after and fail on any growth.
    Soak(soak::SoakArgs),
    /// Boot a tiny x86 guest on an accelerator (`--accel kvm`) on a demo board
    /// (`boards/kvm-demo.toml`): UART output, a ROM device read in and out of romd mode, a BAR
    /// moved by the guest; then plug, run and unplug a second vCPU `--cycles` times, print the
    /// live-object counters before and after and fail on growth. Exit status 3: no usable
    /// /dev/kvm (missing or not accessible); 1: a failure or growth.
    Run(RunArgs),
    /// Say which region answers at ADDR in each address space (or `--space NAME`), with the
    /// flat range, the offset in the region, its attributes, and every container and alias
    /// crossed on the way (`--json`: the same as data).
    Lookup(lookup::LookupArgs),
    /// Say what changed between two machines (board files or QEMU dumps): regions added,
    /// removed, moved, resized, enabled/disabled, re-prioritised, and per address space the
    /// flat ranges that differ. Exit status 0: the same; 1: different; 2: an error.
    Diff(diff::DiffArgs),
    /// Draw a machine's address map: `--svg OUT.svg` (a picture) and/or `--html OUT.html` (a
    /// page that zooms from 2^64 down to bytes and shows the lookup answer on hover).
    Map(map::MapArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Accel {
    /// Linux KVM (/dev/kvm).
    Kvm,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("monitored").args(["qmp", "monitor"]).multiple(true))]
struct RunArgs {
    /// The board file (TOML), e.g. boards/kvm-demo.toml.
    board: PathBuf,
    /// The accelerator.
    #[arg(long, value_enum)]
    accel: Accel,
    /// Plug/run/unplug cycles of the second vCPU (the fixed demo, without a monitor).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    cycles: u64,
    /// Run until `quit`, driven by a QMP monitor on this socket (QEMU's syntax:
    /// `unix:PATH,server=on,wait=off` or `tcp:HOST:PORT,server=on,wait=off`). May be repeated.
    #[arg(long, value_name = "SPEC", conflicts_with = "cycles")]
    qmp: Vec<String>,
    /// Run until `quit` with QEMU's HMP prompt on the terminal (`stdio`).
    #[arg(long, value_name = "stdio", conflicts_with = "cycles")]
    monitor: Option<String>,
    /// CPU topology, QEMU's `-smp` keys: `sockets=S,cores=C,threads=T` (the board's cluster
    /// decides `cpus` and `maxcpus`); by default one socket, cores preferred, as QEMU does.
    #[arg(long, value_name = "TOPOLOGY", requires = "monitored")]
    smp: Option<String>,
    /// CPU model; its device type (`device_add` driver) is MODEL-x86_64-cpu.
    #[arg(long, value_name = "MODEL", default_value = "qemu64")]
    cpu: String,
    /// Do not start the CPUs until `cont` (QEMU's -S).
    #[arg(short = 'S', requires = "monitored")]
    paused: bool,
    /// How often a halted vCPU wakes up (its timer tick), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    tick_ms: u64,
}

#[derive(Args)]
struct SourceArgs {
    /// A board file (TOML), or a QEMU `info mtree -D` dump (told apart by content).
    board: Option<PathBuf>,
    /// Import a QEMU `info mtree -D` dump (`info mtree -D -o` too) instead of a board file.
    #[arg(long, value_name = "DUMP")]
    from_qemu: Option<PathBuf>,
    /// What the dump does not say (TOML: mmio_containers, pure_containers, readonly,
    /// address_space_order, no_disabled_regions). Without it, the import says what it guessed.
    #[arg(long, value_name = "HINTS.toml")]
    hints: Option<PathBuf>,
}

#[derive(Args)]
struct BoardArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Also compare the machine's flat views with a captured `info mtree -f` (block order
    /// and FlatView numbers ignored): differing lines go to stderr, exit status 1 if any.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
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
    /// Print the flat views with each view's lookup index (implies -f, as QEMU's `-d` does;
    /// QEMU prints its dispatch tree here).
    #[arg(short = 'd')]
    dispatch: bool,
    /// Print each region's owner (like `info mtree -o`): what a QEMU `-o` dump or a board
    /// file's `owner` said, ` orphan` when nothing did.
    #[arg(short = 'o')]
    owners: bool,
    /// Print the machine as data (JSON, schema `addrspace-mtree/2` in docs/json-schema.md):
    /// every region once with an id, nested, and every flat view; -f and -D change nothing
    /// (disabled regions are there with `"enabled": false`), -d adds the lookup indexes.
    #[arg(long)]
    json: bool,
    /// Instead of printing, compare the machine's `info mtree -f` with a captured one (block
    /// order and FlatView numbers ignored): print the differing lines, exit status 1 if any.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["disabled", "dispatch", "owners", "json"])]
    check: Option<PathBuf>,
}

/// What a command writes, and whether it succeeded.
struct Outcome {
    stdout: String,
    stderr: String,
    ok: bool,
}

impl Outcome {
    fn out(stdout: String) -> Outcome {
        Outcome {
            stdout,
            stderr: String::new(),
            ok: true,
        }
    }
}

/// Builds the machine; returns what an import guessed, as lines for stderr.
fn load(src: &SourceArgs) -> Result<(Machine, String), String> {
    // Checked here rather than by clap, whose `requires` is skipped next to a conflicting
    // positional argument.
    match (&src.board, &src.from_qemu) {
        (Some(_), Some(_)) => return Err("give either a board file or --from-qemu DUMP, not both".into()),
        (None, None) => return Err("give a board file, or --from-qemu DUMP".into()),
        _ => {}
    }
    if let Some(dump) = &src.from_qemu {
        return source::load_dump(&source::read(dump)?, &dump.display().to_string(), src.hints.as_deref());
    }
    // A board file, or a dump given without --from-qemu: told apart by content.
    source::load_source(src.board.as_ref().expect("checked above"), src.hints.as_deref(), true)
}

/// `--check FILE` against the machine's flat views.
fn compare(m: &Machine, file: &std::path::Path) -> Result<check::Check, String> {
    let ours = mtree::print_flat(&m.memory, &FlatOptions::default());
    check::check(&ours, &source::read(file)?, &file.display().to_string())
}

fn run(cli: Cli) -> Result<Outcome, String> {
    match cli.command {
        Command::Demo => {
            let m = board::load_str(DEMO_BOARD, "boards/pc.toml").map_err(|e| e.to_string())?;
            let mut out = String::from("== info mtree ==\n");
            out += &mtree::print_tree(&m.memory, &TreeOptions::default());
            out += "== info mtree -f ==\n";
            out += &mtree::print_flat(&m.memory, &FlatOptions::default());
            Ok(Outcome::out(out))
        }
        Command::Mtree(a) => {
            let (m, guessed) = load(&a.source)?;
            if let Some(file) = &a.check {
                let c = compare(&m, file)?;
                return Ok(Outcome {
                    stdout: if c.same { format!("{}\n", c.summary) } else { c.diff },
                    stderr: if c.same {
                        guessed
                    } else {
                        format!("{guessed}addrspace: {}\n", c.summary)
                    },
                    ok: c.same,
                });
            }
            let stdout = if a.json {
                mtree::mtree_json(&m.memory, a.dispatch)
                    .to_json()
                    .map_err(|e| e.to_string())?
                    + "\n"
            } else if a.flat || a.dispatch {
                mtree::print_flat(
                    &m.memory,
                    &FlatOptions {
                        dispatch: a.dispatch,
                        owners: a.owners,
                    },
                )
            } else {
                mtree::print_tree(
                    &m.memory,
                    &TreeOptions {
                        disabled: a.disabled,
                        owners: a.owners,
                    },
                )
            };
            Ok(Outcome {
                stdout,
                stderr: guessed,
                ok: true,
            })
        }
        Command::Board(a) => {
            let (m, mut stderr) = load(&a.source)?;
            let mut ok = true;
            if let Some(file) = &a.check {
                let c = compare(&m, file)?;
                stderr += &c.diff;
                stderr += &format!("addrspace: {}\n", c.summary);
                ok = c.same;
            }
            Ok(Outcome {
                stdout: board::export(&m),
                stderr,
                ok,
            })
        }
        Command::Soak(a) => soak::run(&a).map(Outcome::out),
        Command::Lookup(a) => lookup::run(&a).map(|(stdout, stderr)| Outcome {
            stdout,
            stderr,
            ok: true,
        }),
        Command::Map(a) => Ok(Outcome {
            stdout: String::new(),
            stderr: map::run(&a)?,
            ok: true,
        }),
        Command::Run(_) | Command::Diff(_) => Err("handled by main".into()),
    }
}

fn run_failed(e: run::RunError) -> ExitCode {
    match e {
        run::RunError::NoKvm(why) => {
            eprintln!("addrspace: cannot use KVM: {why}");
            ExitCode::from(run::EXIT_NO_KVM)
        }
        run::RunError::Failed(e) => {
            eprintln!("addrspace: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Diff(a) = &cli.command {
        return diff::main(a);
    }
    if let Command::Run(a) = &cli.command {
        let Accel::Kvm = a.accel;
        if !a.qmp.is_empty() || a.monitor.is_some() {
            let opts = serve::ServeOptions {
                board: a.board.clone(),
                qmp: a.qmp.clone(),
                monitor: a.monitor.clone(),
                smp: a.smp.clone(),
                cpu: a.cpu.clone(),
                paused: a.paused,
                tick: std::time::Duration::from_millis(a.tick_ms),
            };
            return match serve::serve(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => run_failed(e),
            };
        }
        return match run::run(&a.board, a.cycles) {
            Ok((report, ok)) => {
                if let Err(e) = output::stdout(&report) {
                    eprintln!("addrspace: {e}");
                    return ExitCode::FAILURE;
                }
                if ok {
                    ExitCode::SUCCESS
                } else {
                    eprintln!("addrspace: the run failed or live objects grew");
                    ExitCode::FAILURE
                }
            }
            Err(e) => run_failed(e),
        };
    }
    match run(cli) {
        Ok(out) => {
            if let Err(e) = output::stdout(&out.stdout) {
                eprintln!("addrspace: {e}");
                return ExitCode::FAILURE;
            }
            eprint!("{}", out.stderr);
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("addrspace: {e}");
            ExitCode::FAILURE
        }
    }
}
