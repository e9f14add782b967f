//! Parsing an HMP command line the way QEMU's monitor does: the command table (with `|`
//! aliases and the `info` sub-table), QEMU's argument kinds (flags in declared order, a
//! string, a `-device`-style option string) and its complaints, word for word.

use serde_json::{Map, Value};

use crate::args::{id_wellformed, split_opts};
use crate::command::MtreeOptions;

/// A parsed HMP line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    /// Nothing to run (blank line).
    Empty,
    /// `help`, `?` or a bare `info`: the text to print.
    Help(String),
    Stop,
    Cont,
    Quit,
    DeviceDel(String),
    /// `device_add`: the options (`driver`, `id`, properties; values are strings).
    DeviceAdd(Map<String, Value>),
    InfoStatus,
    InfoVersion,
    InfoCpus,
    InfoHotpluggableCpus,
    InfoMtree(MtreeOptions),
}

/// How a command takes its arguments.
#[derive(Clone, Copy)]
enum Args {
    None,
    /// One string (`s` in QEMU's `args_type`).
    Str,
    /// A `-device`-style option string (`O`).
    Opts,
    /// The rest of the line, optional (`S?`): `help`'s topic.
    Rest,
    /// Sub-commands.
    Info,
    /// `info mtree`'s flags.
    Mtree,
}

struct Cmd {
    name: &'static str,
    params: &'static str,
    help: &'static str,
    args: Args,
}

/// Top-level commands, sorted by name as QEMU sorts its table. Only the commands we
/// implement; each prints (in `help`) QEMU 10.0.2's help line for it, word for word (the
/// capture `tests/fixtures/qmp/hmp-help.txt`, compared by `tests/hmp_help.rs`).
const COMMANDS: &[Cmd] = &[
    cmd("cont|c", "", "resume emulation", Args::None),
    cmd(
        "device_add",
        "driver[,prop=value][,...]",
        "add device, like -device on the command line",
        Args::Opts,
    ),
    cmd("device_del", "device", "remove device", Args::Str),
    cmd("help|?", "[cmd]", "show the help", Args::Rest),
    cmd(
        "info",
        "[subcommand]",
        "show various information about the system state",
        Args::Info,
    ),
    cmd("quit|q", "", "quit the emulator", Args::None),
    cmd("stop|s", "", "stop emulation", Args::None),
];

/// `info` sub-commands, sorted: only ours, each with QEMU's line (`hmp-help-info.txt`).
const INFO: &[Cmd] = &[
    cmd("cpus", "", "show infos for each CPU", Args::None),
    cmd(
        "hotpluggable-cpus",
        "",
        "Show information about hotpluggable CPUs",
        Args::None,
    ),
    cmd(
        "mtree",
        "[-f][-d][-o][-D]",
        "show memory tree (-f: dump flat view for address spaces;-d: dump dispatch tree, \
         valid with -f only);-o: dump region owners/parents;-D: dump disabled regions",
        Args::Mtree,
    ),
    cmd("status", "", "show the current VM status (running|paused)", Args::None),
    cmd("version", "", "show the version of QEMU", Args::None),
];

const fn cmd(name: &'static str, params: &'static str, help: &'static str, args: Args) -> Cmd {
    Cmd {
        name,
        params,
        help,
        args,
    }
}

fn matches(cmd: &Cmd, word: &str) -> bool {
    cmd.name.split('|').any(|alias| alias == word)
}

/// Parses `line`; `Err` is the text QEMU prints instead of running anything.
pub(crate) fn parse(line: &str) -> Result<Line, String> {
    parse_in(line, 0, COMMANDS, "")
}

/// Looks up the command word at `line[at..]` in `table`; `prefix` names the parent command.
fn parse_in(line: &str, at: usize, table: &[Cmd], prefix: &str) -> Result<Line, String> {
    let start = at + leading_space(&line[at..]);
    if start == line.len() {
        return Ok(Line::Empty);
    }
    let end = line[start..]
        .find(|c: char| c == '/' || c.is_ascii_whitespace())
        .map_or(line.len(), |i| start + i);
    let word = &line[start..end];
    let Some(cmd) = table.iter().find(|c| matches(c, word)) else {
        return Err(format!("unknown command: '{}'\n", &line[..end]));
    };
    let rest_at = end + leading_space(&line[end..]);
    let rest = &line[rest_at..];
    let name = cmd.name;
    match cmd.args {
        Args::Info if !rest.is_empty() => parse_in(line, rest_at, INFO, "info "),
        Args::Info => Ok(Line::Help(dump(INFO, "info "))),
        Args::Rest => Ok(Line::Help(help(rest))),
        Args::Str => {
            let (id, after) = get_str(rest).ok_or(format!("{name}: string expected\n"))?;
            no_more(name, after)?;
            Ok(Line::DeviceDel(id))
        }
        Args::Opts if rest.is_empty() => Ok(Line::DeviceAdd(Map::new())),
        Args::Opts => {
            let (text, after) = get_str(rest).ok_or(format!("{name}: string expected\n"))?;
            let opts = device_opts(&text)?;
            no_more(name, after)?;
            Ok(Line::DeviceAdd(opts))
        }
        Args::Mtree => mtree(name, rest).map(Line::InfoMtree),
        Args::None => {
            no_more(name, rest)?;
            Ok(match (prefix, name) {
                ("info ", "cpus") => Line::InfoCpus,
                ("info ", "hotpluggable-cpus") => Line::InfoHotpluggableCpus,
                ("info ", "status") => Line::InfoStatus,
                ("info ", "version") => Line::InfoVersion,
                (_, "cont|c") => Line::Cont,
                (_, "quit|q") => Line::Quit,
                _ => Line::Stop,
            })
        }
    }
}

fn leading_space(s: &str) -> usize {
    s.len() - s.trim_start_matches(|c: char| c.is_ascii_whitespace()).len()
}

fn no_more(name: &str, rest: &str) -> Result<(), String> {
    if rest.trim_start_matches(|c: char| c.is_ascii_whitespace()).is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: extraneous characters at the end of line\n"))
    }
}

/// QEMU's `get_str`: a word, or a double-quoted string with `\n \r \\ \' \"` escapes.
fn get_str(s: &str) -> Option<(String, &str)> {
    let s = &s[leading_space(s)..];
    if s.is_empty() {
        return None;
    }
    let Some(body) = s.strip_prefix('"') else {
        let end = s.find(|c: char| c.is_ascii_whitespace()).unwrap_or(s.len());
        return Some((s[..end].to_string(), &s[end..]));
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// A `-device` option string: `DRIVER,key=value,...` (`,,` is a literal comma; a bare key
/// means `on`; the first bare word is the driver). Values stay strings, as QEMU's option
/// parsing leaves them.
fn device_opts(text: &str) -> Result<Map<String, Value>, String> {
    let mut opts = Map::new();
    let parts = split_opts(text);
    for (i, part) in parts.into_iter().enumerate() {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None if i == 0 => ("driver".to_string(), part),
            None => (part, "on".to_string()),
        };
        opts.insert(key, Value::String(value));
    }
    if let Some(Value::String(id)) = opts.get("id") {
        if !id_wellformed(id) {
            return Err("Parameter 'id' expects an identifier\n".to_string());
        }
    }
    Ok(opts)
}

/// `info mtree`'s flags, QEMU style: each declared flag (`-f -d -o -D`, in that order) is
/// looked for in turn; a flag given out of order or unknown is "unsupported".
fn mtree(name: &str, rest: &str) -> Result<MtreeOptions, String> {
    const FLAGS: [char; 4] = ['f', 'd', 'o', 'D'];
    let mut opts = MtreeOptions::default();
    let mut p = rest;
    for (i, flag) in FLAGS.iter().enumerate() {
        let trimmed = &p[leading_space(p)..];
        let Some(after_dash) = trimmed.strip_prefix('-') else {
            p = trimmed;
            continue;
        };
        let given = after_dash.chars().next();
        if given != Some(*flag) {
            match given {
                Some(c) if FLAGS[i + 1..].contains(&c) => continue,
                Some(c) => return Err(format!("{name}: unsupported option -{c}\n")),
                None => return Err(format!("{name}: unsupported option -\n")),
            }
        }
        p = &after_dash[1..];
        match flag {
            'f' => opts.flat = true,
            'd' => opts.dispatch = true,
            'D' => opts.disabled = true,
            _ => opts.owners = true,
        }
    }
    no_more(name, p)?;
    Ok(opts)
}

fn dump(table: &[Cmd], prefix: &str) -> String {
    table
        .iter()
        .map(|c| format!("{prefix}{} {} -- {}\n", c.name, c.params, c.help))
        .collect()
}

/// `help [cmd]`: everything, one command, or one table.
fn help(topic: &str) -> String {
    let words: Vec<&str> = topic.split_ascii_whitespace().collect();
    let mut table = COMMANDS;
    let mut prefix = String::new();
    for (i, word) in words.iter().enumerate() {
        let Some(cmd) = table.iter().find(|c| matches(c, word)) else {
            return format!("unknown command: '{}'\n", words[..=i].join(" "));
        };
        if matches!(cmd.args, Args::Info) {
            table = INFO;
            prefix = format!("{prefix}{word} ");
            continue;
        }
        return format!("{prefix}{} {} -- {}\n", cmd.name, cmd.params, cmd.help);
    }
    dump(table, &prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn commands_and_aliases() {
        assert_eq!(parse(""), Ok(Line::Empty));
        assert_eq!(parse("   "), Ok(Line::Empty));
        assert_eq!(parse("stop"), Ok(Line::Stop));
        assert_eq!(parse(" s "), Ok(Line::Stop));
        assert_eq!(parse("c"), Ok(Line::Cont));
        assert_eq!(parse("cont"), Ok(Line::Cont));
        assert_eq!(parse("q"), Ok(Line::Quit));
        assert_eq!(parse("info cpus"), Ok(Line::InfoCpus));
        assert_eq!(parse("info  status"), Ok(Line::InfoStatus));
        assert_eq!(parse("info version"), Ok(Line::InfoVersion));
        assert_eq!(parse("info hotpluggable-cpus"), Ok(Line::InfoHotpluggableCpus));
        assert_eq!(parse("device_del cpu1"), Ok(Line::DeviceDel("cpu1".into())));
        assert_eq!(parse("device_del \"a b\""), Ok(Line::DeviceDel("a b".into())));
    }

    #[test]
    fn qemus_complaints() {
        assert_eq!(parse("frob x"), Err("unknown command: 'frob'\n".into()));
        assert_eq!(parse("  frob"), Err("unknown command: '  frob'\n".into()));
        assert_eq!(parse("info frob"), Err("unknown command: 'info frob'\n".into()));
        assert_eq!(
            parse("stop now"),
            Err("stop|s: extraneous characters at the end of line\n".into())
        );
        assert_eq!(
            parse("info cpus 1"),
            Err("cpus: extraneous characters at the end of line\n".into())
        );
        assert_eq!(parse("device_del"), Err("device_del: string expected\n".into()));
        assert_eq!(
            parse("device_del a b"),
            Err("device_del: extraneous characters at the end of line\n".into())
        );
        assert_eq!(
            parse("device_add x,id=1x"),
            Err("Parameter 'id' expects an identifier\n".into())
        );
    }

    #[test]
    fn device_add_options() {
        assert_eq!(
            parse("device_add qemu64-x86_64-cpu,socket-id=1,core-id=0,thread-id=0,id=c1"),
            Ok(Line::DeviceAdd(opts(&[
                ("driver", "qemu64-x86_64-cpu"),
                ("socket-id", "1"),
                ("core-id", "0"),
                ("thread-id", "0"),
                ("id", "c1")
            ])))
        );
        assert_eq!(
            parse("device_add driver=d,x=a,,b,flag"),
            Ok(Line::DeviceAdd(opts(&[("driver", "d"), ("x", "a,b"), ("flag", "on")])))
        );
        assert_eq!(parse("device_add"), Ok(Line::DeviceAdd(Map::new())));
    }

    #[test]
    fn mtree_flags_in_declared_order() {
        let m = |f, d, dd| {
            Ok(Line::InfoMtree(MtreeOptions {
                flat: f,
                dispatch: d,
                disabled: dd,
                owners: false,
            }))
        };
        assert_eq!(parse("info mtree"), m(false, false, false));
        assert_eq!(parse("info mtree -f"), m(true, false, false));
        assert_eq!(parse("info mtree -f -d -D"), m(true, true, true));
        assert_eq!(parse("info mtree -D"), m(false, false, true));
        assert_eq!(parse("info mtree -d -f"), Err("mtree: unsupported option -f\n".into()));
        assert_eq!(parse("info mtree -x"), Err("mtree: unsupported option -x\n".into()));
        assert_eq!(
            parse("info mtree -fd"),
            Err("mtree: extraneous characters at the end of line\n".into())
        );
        assert_eq!(parse("info mtree -d"), m(false, true, false));
        let o = |f| {
            Ok(Line::InfoMtree(MtreeOptions {
                flat: f,
                owners: true,
                ..MtreeOptions::default()
            }))
        };
        assert_eq!(parse("info mtree -o"), o(false));
        assert_eq!(parse("info mtree -f -o"), o(true));
        assert_eq!(parse("info mtree -o -f"), Err("mtree: unsupported option -f\n".into()));
    }

    #[test]
    fn help_texts() {
        let Ok(Line::Help(all)) = parse("help") else {
            panic!("help")
        };
        assert!(all.starts_with("cont|c  -- resume emulation\n"));
        assert_eq!(all.lines().count(), COMMANDS.len());
        let Ok(Line::Help(info)) = parse("info") else {
            panic!("info")
        };
        assert!(info.starts_with("info cpus  -- show infos for each CPU\n"));
        assert_eq!(parse("? info"), Ok(Line::Help(info)));
        assert_eq!(parse("help stop"), Ok(Line::Help("stop|s  -- stop emulation\n".into())));
        assert_eq!(
            parse("help info nope"),
            Ok(Line::Help("unknown command: 'info nope'\n".into()))
        );
    }
}
