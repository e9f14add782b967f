//! Reading the text of an `info mtree -D` dump into region lines and blocks.
//!
//! Indentation gives the hierarchy (rule 1): a stack of the open line at each level finds a
//! line's parent in O(1), whatever the number of earlier siblings. `-o` dumps are accepted:
//! the owner text QEMU appends (` owner:{…}`, ` parent:{…}`, ` orphan`) is kept as the
//! region's owner when most region lines carry it (then a line without it is an error);
//! ` orphan` means no owner. Dumps that cannot be imported faithfully — `info mtree -f`, or
//! `info mtree` without `-D`, which leaves disabled regions out — are refused with a message
//! that says what to capture instead.

use std::collections::HashSet;

use crate::io::load_error::LoadError;

type Result<T> = std::result::Result<T, LoadError>;

/// A region line's type word (`nv-` prefix apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Ty {
    Ram,
    Rom,
    Romd,
    Ramd,
    Io,
    Container,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "ram" => Ty::Ram,
            "rom" => Ty::Rom,
            "romd" => Ty::Romd,
            "ramd" => Ty::Ramd,
            "i/o" => Ty::Io,
            "container" => Ty::Container,
            _ => return None,
        })
    }
}

/// `alias NAME @TARGET START-END`: the target's name and the window's start.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(super) struct AliasRef {
    pub target: String,
    pub offset: u64,
}

/// One region line.
#[derive(Debug)]
pub(super) struct Line {
    pub lineno: usize,
    pub block: usize,
    pub start: u64,
    pub size: u128,
    pub prio: i32,
    pub ty: Ty,
    pub nv: bool,
    pub name: String,
    pub alias: Option<AliasRef>,
    pub disabled: bool,
    /// Owner text of an `-o` dump (`None` for ` orphan` or a dump without owners).
    pub owner: Option<String>,
    pub parent: Option<usize>,
    /// In print order.
    pub children: Vec<usize>,
    /// Address relative to the parent (a block root's own address for roots).
    pub rel: u64,
    /// Structural signature of the line and its subtree (see `identity`).
    pub sig: u64,
}

/// An `address-space:` group or a `memory-region:` section.
#[derive(Debug)]
pub(super) struct Block {
    pub spaces: Vec<String>,
    pub section: Option<String>,
    pub root: Option<usize>,
    pub lineno: usize,
}

/// A parsed dump: lines in text order (a parent always before its children).
pub(super) struct Dump<'a> {
    pub file: &'a str,
    pub lines: Vec<Line>,
    pub blocks: Vec<Block>,
}

impl Dump<'_> {
    pub fn err(&self, line: usize, msg: impl Into<String>) -> LoadError {
        LoadError::dump(self.file, line, msg.into(), None)
    }
}

const NEEDS_D: &str = "import needs `info mtree -D` (with or without -o)";

fn hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn hex_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('-')?;
    Some((hex(a)?, hex(b)?))
}

/// The text before the owner part of an `info mtree -o` line (` owner:{…}` and/or
/// ` parent:{…}`, or ` orphan`), or `None` if the line has none.
pub(super) fn strip_owner(s: &str) -> Option<&str> {
    if let Some(r) = s.strip_suffix(" orphan") {
        return Some(r);
    }
    let mut rest = s;
    let mut found = false;
    // QEMU prints the owner first, then the parent: strip from the end.
    for tag in [" parent:{", " owner:{"] {
        let Some(body) = rest.strip_suffix('}') else { break };
        let Some(i) = body.rfind(tag) else { continue };
        let inner = &body[i + tag.len()..];
        if (inner.starts_with("dev ") || inner.starts_with("obj ")) && !inner.contains('}') {
            rest = &rest[..i];
            found = true;
        }
    }
    found.then_some(rest)
}

/// Number of leading spaces, 16 bytes at a time (a 20 000-deep line has 40 000 of them).
fn indent(l: &str) -> usize {
    let b = l.as_bytes();
    let mut n = 0;
    for chunk in b.chunks_exact(16) {
        if chunk != [b' '; 16] {
            break;
        }
        n += 16;
    }
    n + b[n..].iter().take_while(|&&c| c == b' ').count()
}

/// Whether a line is blank (it ends a block).
fn blank(l: &str) -> bool {
    l[indent(l)..].trim().is_empty()
}

fn is_header(l: &str) -> bool {
    l.starts_with("address-space: ") || l.starts_with("memory-region: ") || l.starts_with("FlatView #")
}

struct Parser<'a> {
    dump: Dump<'a>,
    sections: HashSet<String>,
    /// Region lines carry owner text (an `info mtree -o` dump).
    owners: bool,
    /// The open line at each level of the current block (`open[level - 1]`).
    open: Vec<usize>,
}

/// Parses a dump's text; `file` names it in errors.
pub(super) fn parse<'a>(text: &str, file: &'a str) -> Result<Dump<'a>> {
    let raw: Vec<&str> = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut sections = HashSet::new();
    let mut region_lines = 0usize;
    let mut owned = 0usize;
    for l in &raw {
        if let Some(n) = l.strip_prefix("memory-region: ") {
            sections.insert(n.to_string());
        } else if !blank(l) && !is_header(l) {
            region_lines += 1;
            owned += usize::from(strip_owner(l).is_some());
        }
    }
    let mut p = Parser {
        dump: Dump {
            file,
            lines: Vec::new(),
            blocks: Vec::new(),
        },
        sections,
        // Every line of an `-o` dump has owner text; a line of a plain dump has it only if a
        // region's name happens to end like it. Most lines decide; the others are errors.
        owners: owned > 0 && owned * 2 >= region_lines,
        open: Vec::new(),
    };
    p.parse(&raw)?;
    p.check_complete()?;
    Ok(p.dump)
}

impl Parser<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> LoadError {
        self.dump.err(line, msg)
    }

    fn parse(&mut self, raw: &[&str]) -> Result<()> {
        let mut open = false;
        for (i, l) in raw.iter().enumerate() {
            let lineno = i + 1;
            if blank(l) {
                open = false;
                continue;
            }
            if let Some(n) = l.strip_prefix("address-space: ") {
                let blocks = &mut self.dump.blocks;
                let continues = open && blocks.last().is_some_and(|b| b.section.is_none() && b.root.is_none());
                if !continues {
                    blocks.push(Block {
                        spaces: Vec::new(),
                        section: None,
                        root: None,
                        lineno,
                    });
                }
                blocks.last_mut().expect("pushed").spaces.push(n.to_string());
                open = true;
                self.open.clear();
                continue;
            }
            if let Some(n) = l.strip_prefix("memory-region: ") {
                self.dump.blocks.push(Block {
                    spaces: Vec::new(),
                    section: Some(n.to_string()),
                    root: None,
                    lineno,
                });
                open = true;
                self.open.clear();
                continue;
            }
            if l.starts_with("FlatView #") {
                return Err(self.err(
                    lineno,
                    format!("this is `info mtree -f` output (flat views lose the region tree); {NEEDS_D}"),
                ));
            }
            if !open {
                return Err(self.err(
                    lineno,
                    "region line outside an `address-space:` or `memory-region:` block",
                ));
            }
            self.line(l, lineno)?;
        }
        Ok(())
    }

    /// Refuses what `info mtree` without `-D` leaves out: blocks whose root is disabled, and
    /// sections that no alias line targets (queued by a disabled alias that was not printed).
    fn check_complete(&self) -> Result<()> {
        let d = &self.dump;
        for b in &d.blocks {
            if b.root.is_none() {
                return Err(self.err(
                    b.lineno,
                    format!(
                        "block has no root region line: `info mtree` without -D leaves out a disabled root; {NEEDS_D}"
                    ),
                ));
            }
        }
        let targets: HashSet<&str> = d
            .lines
            .iter()
            .filter_map(|l| l.alias.as_ref().map(|a| a.target.as_str()))
            .collect();
        for b in &d.blocks {
            if let Some(name) = &b.section {
                if !targets.contains(name.as_str()) {
                    return Err(self.err(
                        b.lineno,
                        format!(
                            "`memory-region: {name}` is the target of no alias line: `info mtree` without -D \
                             leaves out disabled aliases (and disabled regions); {NEEDS_D}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn line(&mut self, l: &str, lineno: usize) -> Result<()> {
        let l = l.strip_prefix("[DETECTED OVERFLOW!] ").unwrap_or(l);
        let indent = indent(l);
        let body = &l[indent..];
        if indent < 2 || indent % 2 != 0 {
            return Err(self.err(
                lineno,
                format!("indentation of {indent} spaces; expected a positive even number"),
            ));
        }
        let level = indent / 2;
        let bad = |what: &str| self.err(lineno, format!("cannot parse region line ({what}): `{body}`"));
        let (range, rest) = body.split_once(' ').ok_or_else(|| bad("address range"))?;
        let (start, end) = hex_range(range).ok_or_else(|| bad("address range"))?;
        let rest = rest.strip_prefix("(prio ").ok_or_else(|| bad("`(prio`"))?;
        let (prio, rest) = rest.split_once(", ").ok_or_else(|| bad("priority"))?;
        let prio: i32 = prio.parse().map_err(|_| bad("priority"))?;
        let (ty, rest) = rest.split_once("): ").ok_or_else(|| bad("type"))?;
        let (nv, ty) = match ty.strip_prefix("nv-") {
            Some(t) => (true, t),
            None => (false, ty),
        };
        let ty = Ty::parse(ty).ok_or_else(|| bad("unknown type word"))?;
        let (rest, owner) = if self.owners {
            let kept = strip_owner(rest).ok_or_else(|| bad("owner text, as on the other lines of this -o dump"))?;
            let owner = &rest[kept.len() + 1..];
            (kept, (owner != "orphan").then(|| owner.to_string()))
        } else {
            (rest, None)
        };
        let (rest, disabled) = match rest.strip_suffix(" [disabled]") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (name, alias) = match rest.strip_prefix("alias ") {
            Some(a) => {
                let (head, window) = a.rsplit_once(' ').ok_or_else(|| bad("alias window"))?;
                let (ts, _te) = hex_range(window).ok_or_else(|| bad("alias window"))?;
                // Names may contain ` @`: prefer the split whose target is a printed section.
                let splits: Vec<usize> = head.match_indices(" @").map(|(i, _)| i).collect();
                let at = splits
                    .iter()
                    .copied()
                    .find(|&i| self.sections.contains(&head[i + 2..]))
                    .or_else(|| splits.last().copied())
                    .ok_or_else(|| bad("alias target"))?;
                let target = head[at + 2..].to_string();
                (head[..at].to_string(), Some(AliasRef { target, offset: ts }))
            }
            None => (rest.to_string(), None),
        };
        let size = if alias.is_some() && start == end {
            0
        } else {
            u128::from(end.wrapping_sub(start)) + 1
        };
        let block = self.dump.blocks.len() - 1;
        let idx = self.dump.lines.len();
        let parent = if level == 1 {
            if self.dump.blocks[block].root.is_some() {
                return Err(self.err(lineno, "second root line in one block"));
            }
            self.dump.blocks[block].root = Some(idx);
            None
        } else {
            if self.open.len() < level - 1 {
                let above = match self.open.last() {
                    Some(&p) => format!("line {}", self.dump.lines[p].lineno),
                    None => format!("its block's header (line {})", self.dump.blocks[block].lineno),
                };
                return Err(self.err(
                    lineno,
                    format!(
                        "line is indented {} levels below {above}: `info mtree` without -D prints this \
                         under a disabled region it leaves out; {NEEDS_D}",
                        level - self.open.len()
                    ),
                ));
            }
            let p = self.open[level - 2];
            if self.dump.lines[p].alias.is_some() {
                return Err(self.err(lineno, "an alias cannot have subregions"));
            }
            Some(p)
        };
        self.open.truncate(level - 1);
        self.open.push(idx);
        let rel = match parent {
            Some(p) => start.wrapping_sub(self.dump.lines[p].start),
            None => start,
        };
        if let Some(p) = parent {
            self.dump.lines[p].children.push(idx);
        }
        self.dump.lines.push(Line {
            lineno,
            block,
            start,
            size,
            prio,
            ty,
            nv,
            name,
            alias,
            disabled,
            owner,
            parent,
            children: Vec::new(),
            rel,
            sig: 0,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::strip_owner;

    #[test]
    fn owner_text_is_stripped_from_the_end_only() {
        assert_eq!(strip_owner("pc.ram owner:{obj path=/objects/pc.ram}"), Some("pc.ram"));
        assert_eq!(
            strip_owner("system parent:{obj path=/machine/unattached}"),
            Some("system")
        );
        assert_eq!(
            strip_owner("a b [disabled] owner:{dev id=x} parent:{dev path=/machine/y}"),
            Some("a b [disabled]")
        );
        assert_eq!(strip_owner("io orphan"), Some("io"));
        assert_eq!(strip_owner("name with (parens) @ and spaces"), None);
        assert_eq!(strip_owner("x owner:{not an owner}"), None);
        // A name that itself looks like owner text keeps it when the real owner text follows.
        assert_eq!(
            strip_owner("n parent:{obj p} owner:{dev id=d}"),
            Some("n parent:{obj p}")
        );
    }
}
