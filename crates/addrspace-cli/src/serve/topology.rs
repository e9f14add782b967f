//! CPU topology of the monitored machine: which socket, core and thread each CPU slot is,
//! the way QEMU's x86 machines number them (`-smp`), and the `device_add` property rules
//! that pick a slot (QEMU's `x86_cpu_pre_plug`, same checks in the same order, same words).

use serde_json::{json, Map, Value};

/// Sockets × cores × threads; slot `i` is thread `i % threads` of core
/// `(i / threads) % cores` of socket `i / (cores × threads)` (QEMU's x86 order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
}

/// The ids of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopoIds {
    pub socket: u32,
    pub core: u32,
    pub thread: u32,
}

impl Topology {
    /// Parses `-smp`-style text: `[cpus=]N,maxcpus=M,sockets=S,cores=C,threads=T` (every part
    /// optional). `board_cpus`/`board_max` are what the board's cluster says; `cpus` and
    /// `maxcpus`, when given, must agree with it. Missing counts are derived the way QEMU does
    /// since 6.2: cores are preferred over sockets.
    pub fn parse(text: Option<&str>, board_cpus: u32, board_max: u32) -> Result<Topology, String> {
        let (mut sockets, mut cores, mut threads) = (None, None, None);
        if let Some(text) = text {
            for (k, part) in text.split(',').enumerate() {
                let (key, value) = match part.split_once('=') {
                    Some((key, value)) => (key, value),
                    None if k == 0 => ("cpus", part),
                    None => return Err(format!("--smp: `{part}` is not key=value")),
                };
                let n: u32 = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--smp: {key}={value}: not a positive number"))?;
                let expect = |what: &str, board: u32| {
                    if n == board {
                        Ok(())
                    } else {
                        Err(format!(
                            "--smp: {what}={n}, but the board's cluster says {board} (the board decides how many CPUs exist)"
                        ))
                    }
                };
                match key {
                    "cpus" => expect("cpus", board_cpus)?,
                    "maxcpus" => expect("maxcpus", board_max)?,
                    "sockets" => sockets = Some(n),
                    "cores" => cores = Some(n),
                    "threads" => threads = Some(n),
                    other => {
                        return Err(format!(
                            "--smp: unknown key `{other}` (cpus, maxcpus, sockets, cores, threads)"
                        ))
                    }
                }
            }
        }
        let threads = threads.unwrap_or(1);
        // How many of a level fit beside `per` CPUs each (at least one; a product too large
        // for u32 fits none, and the check below says so).
        let fit = |per: u32, times: u32| per.checked_mul(times).map_or(0, |d| board_max / d).max(1);
        let (sockets, cores) = match (sockets, cores) {
            (Some(s), Some(c)) => (s, c),
            (Some(s), None) => (s, fit(s, threads)),
            (None, Some(c)) => (fit(c, threads), c),
            (None, None) => (1, (board_max / threads).max(1)),
        };
        let t = Topology {
            sockets,
            cores,
            threads,
        };
        if u128::from(sockets) * u128::from(cores) * u128::from(threads) != u128::from(board_max) {
            return Err(format!(
                "--smp: sockets ({sockets}) * cores ({cores}) * threads ({threads}) must equal the board's max-cpus ({board_max})"
            ));
        }
        Ok(t)
    }

    /// How many slots.
    pub fn slots(&self) -> usize {
        (self.sockets * self.cores * self.threads) as usize
    }

    /// The ids of slot `slot`.
    pub fn ids(&self, slot: usize) -> TopoIds {
        let i = slot as u32;
        TopoIds {
            socket: i / (self.cores * self.threads),
            core: (i / self.threads) % self.cores,
            thread: i % self.threads,
        }
    }

    /// The slot of `ids` (all in range).
    pub fn slot(&self, ids: TopoIds) -> usize {
        ((ids.socket * self.cores + ids.core) * self.threads + ids.thread) as usize
    }

    fn bits(n: u32) -> u32 {
        32 - n.saturating_sub(1).leading_zeros()
    }

    /// The x86 APIC ID of `ids`: each level gets the bits its count needs.
    pub fn apic_id(&self, ids: TopoIds) -> u32 {
        let tb = Self::bits(self.threads);
        let cb = Self::bits(self.cores);
        (ids.socket << (cb + tb)) | (ids.core << tb) | ids.thread
    }

    /// The ids an APIC ID decodes to.
    pub fn ids_of_apic_id(&self, apic: u32) -> TopoIds {
        let tb = Self::bits(self.threads);
        let cb = Self::bits(self.cores);
        TopoIds {
            socket: apic >> (cb + tb),
            core: (apic >> tb) & ((1 << cb) - 1),
            thread: apic & ((1 << tb) - 1),
        }
    }

    /// The `props` member of `query-hotpluggable-cpus` / `query-cpus-fast` for a slot.
    pub fn props(&self, slot: usize) -> Value {
        let ids = self.ids(slot);
        json!({"core-id": ids.core, "thread-id": ids.thread, "socket-id": ids.socket})
    }

    /// Picks the slot `device_add` properties name, with QEMU's checks and messages:
    /// `apic-id`, or `socket-id`/`core-id`/`thread-id` (`die-id`/`module-id` may be given as
    /// 0: this topology has one of each).
    pub fn slot_of(&self, props: &CpuProps) -> Result<usize, String> {
        let ids = match props.apic_id {
            Some(apic) => {
                let ids = self.ids_of_apic_id(apic);
                let slot = (ids.socket < self.sockets && ids.core < self.cores && ids.thread < self.threads)
                    .then(|| self.slot(ids))
                    .filter(|&s| self.apic_id(self.ids(s)) == apic);
                let Some(slot) = slot else {
                    return Err(format!(
                        "Invalid CPU [socket: {}, die: 0, module: 0, core: {}, thread: {}] with APIC ID {apic}, valid index range 0:{}",
                        ids.socket,
                        ids.core,
                        ids.thread,
                        self.slots() - 1
                    ));
                };
                let checks = [
                    ("socket-id", props.socket, ids.socket),
                    ("die-id", props.die, 0),
                    ("module-id", props.module, 0),
                    ("core-id", props.core, ids.core),
                    ("thread-id", props.thread, ids.thread),
                ];
                for (name, given, actual) in checks {
                    if let Some(g) = given {
                        if g != i64::from(actual) {
                            return Err(format!(
                                "property {name}: {} doesn't match set apic-id: {apic:#x} ({name}: {actual})",
                                g as u32
                            ));
                        }
                    }
                }
                return Ok(slot);
            }
            None => {
                let level = |name: &str, given: Option<i64>, count: u32, optional: bool| -> Result<u32, String> {
                    match given {
                        None if optional => Ok(0),
                        None => Err(format!("CPU {name} is not set")),
                        Some(v) if v < 0 => Err(format!("CPU {name} is not set")),
                        Some(v) if v > i64::from(count) - 1 => Err(format!(
                            "Invalid CPU {name}: {} must be in range 0:{}",
                            v as u32,
                            count - 1
                        )),
                        Some(v) => Ok(v as u32),
                    }
                };
                let socket = level("socket-id", props.socket, self.sockets, false)?;
                level("die-id", props.die, 1, true)?;
                level("module-id", props.module, 1, true)?;
                let core = level("core-id", props.core, self.cores, false)?;
                let thread = level("thread-id", props.thread, self.threads, false)?;
                TopoIds { socket, core, thread }
            }
        };
        Ok(self.slot(ids))
    }
}

/// The topology properties of a `device_add` for a CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuProps {
    pub socket: Option<i64>,
    pub die: Option<i64>,
    pub module: Option<i64>,
    pub core: Option<i64>,
    pub thread: Option<i64>,
    pub apic_id: Option<u32>,
}

impl CpuProps {
    /// Reads the properties of a CPU type `cpu_type`: integers, as JSON numbers (QMP) or,
    /// with `keyval`, decimal strings (HMP's `key=value`). Anything else is refused with
    /// QEMU's words.
    pub fn from_map(cpu_type: &str, props: &Map<String, Value>, keyval: bool) -> Result<CpuProps, String> {
        let mut p = CpuProps::default();
        for (name, value) in props {
            let known = matches!(
                name.as_str(),
                "socket-id" | "die-id" | "module-id" | "core-id" | "thread-id" | "node-id" | "apic-id"
            );
            let n = match value {
                Value::String(s) if keyval => s.trim().parse::<i64>().ok(),
                Value::Number(n) if !keyval => n.as_i64(),
                _ if known && !keyval => {
                    return Err(format!("Invalid parameter type for '{name}', expected: integer"));
                }
                _ => None,
            };
            let slot = match name.as_str() {
                "socket-id" => &mut p.socket,
                "die-id" => &mut p.die,
                "module-id" => &mut p.module,
                "core-id" => &mut p.core,
                "thread-id" => &mut p.thread,
                "node-id" => {
                    // One NUMA node (none configured): QEMU ignores a -1 and refuses others.
                    match n {
                        Some(-1) => continue,
                        _ => return Err("NUMA is not configured on this machine: node-id is not allowed".into()),
                    }
                }
                "apic-id" => {
                    let v = n.and_then(|n| u32::try_from(n).ok());
                    let Some(v) = v else {
                        return Err("Parameter 'apic-id' expects uint32".to_string());
                    };
                    p.apic_id = Some(v);
                    continue;
                }
                _ => return Err(format!("Property '{cpu_type}.{name}' not found")),
            };
            let Some(n) = n.filter(|n| i32::try_from(*n).is_ok()) else {
                return Err(format!("Parameter '{name}' expects int32"));
            };
            *slot = Some(n);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u32, c: u32, th: u32) -> Topology {
        Topology {
            sockets: s,
            cores: c,
            threads: th,
        }
    }

    #[test]
    fn default_prefers_cores_like_qemu() {
        assert_eq!(Topology::parse(None, 1, 4), Ok(t(1, 4, 1)));
        assert_eq!(Topology::parse(Some("1,maxcpus=4,sockets=2"), 1, 4), Ok(t(2, 2, 1)));
        assert_eq!(
            Topology::parse(Some("sockets=2,cores=1,threads=2"), 1, 4),
            Ok(t(2, 1, 2))
        );
        assert!(Topology::parse(Some("sockets=3"), 1, 4)
            .unwrap_err()
            .contains("must equal"));
        assert!(Topology::parse(Some("maxcpus=8"), 1, 4).unwrap_err().contains("board"));
        assert!(Topology::parse(Some("cores=x"), 1, 4)
            .unwrap_err()
            .contains("not a positive"));
        assert!(Topology::parse(Some("dies=1"), 1, 4)
            .unwrap_err()
            .contains("unknown key"));
    }

    #[test]
    fn huge_counts_are_refused_not_overflowed() {
        for text in [
            "sockets=65536,threads=65536",
            "cores=65536,threads=65536",
            "sockets=4294967295,cores=4294967295,threads=4294967295",
            "threads=4294967295",
        ] {
            assert!(
                Topology::parse(Some(text), 1, 4).unwrap_err().contains("must equal"),
                "{text}"
            );
        }
    }

    #[test]
    fn slots_ids_and_apic_ids_round_trip() {
        for topo in [t(1, 4, 1), t(2, 2, 1), t(2, 1, 2), t(1, 3, 1), t(3, 3, 3)] {
            let mut apics = std::collections::HashSet::new();
            for slot in 0..topo.slots() {
                let ids = topo.ids(slot);
                assert_eq!(topo.slot(ids), slot);
                let apic = topo.apic_id(ids);
                assert_eq!(topo.ids_of_apic_id(apic), ids);
                assert!(apics.insert(apic), "{topo:?}: apic id {apic} twice");
            }
        }
    }

    fn props(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn device_add_props_follow_qemus_checks() {
        let topo = t(2, 2, 1);
        let ty = "qemu64-x86_64-cpu";
        let slot = |p: &[(&str, Value)]| CpuProps::from_map(ty, &props(p), false).and_then(|p| topo.slot_of(&p));
        let text = |p: &[(&str, Value)]| CpuProps::from_map(ty, &props(p), true).and_then(|p| topo.slot_of(&p));
        assert_eq!(
            slot(&[("socket-id", json!(1)), ("core-id", json!(1)), ("thread-id", json!(0))]),
            Ok(3)
        );
        assert_eq!(
            text(&[
                ("socket-id", json!("1")),
                ("core-id", json!("0")),
                ("thread-id", json!("0"))
            ]),
            Ok(2)
        );
        assert_eq!(
            slot(&[("socket-id", json!("1"))]),
            Err("Invalid parameter type for 'socket-id', expected: integer".into())
        );
        assert_eq!(
            text(&[("socket-id", json!("x"))]),
            Err("Parameter 'socket-id' expects int32".into())
        );
        assert_eq!(
            slot(&[("core-id", json!(0)), ("thread-id", json!(0))]),
            Err("CPU socket-id is not set".into())
        );
        assert_eq!(
            slot(&[("socket-id", json!(2)), ("core-id", json!(0)), ("thread-id", json!(0))]),
            Err("Invalid CPU socket-id: 2 must be in range 0:1".into())
        );
        assert_eq!(
            slot(&[("socket-id", json!(0)), ("core-id", json!(0))]),
            Err("CPU thread-id is not set".into())
        );
        assert_eq!(
            slot(&[("foo", json!(1))]),
            Err("Property 'qemu64-x86_64-cpu.foo' not found".into())
        );
        assert_eq!(
            slot(&[("socket-id", json!([1]))]),
            Err("Invalid parameter type for 'socket-id', expected: integer".into())
        );
        assert_eq!(
            slot(&[("socket-id", json!(1u64 << 40))]),
            Err("Parameter 'socket-id' expects int32".into())
        );
        assert_eq!(slot(&[("apic-id", json!(3))]), Ok(3));
        assert_eq!(
            slot(&[("apic-id", json!(3)), ("core-id", json!(0))]),
            Err("property core-id: 0 doesn't match set apic-id: 0x3 (core-id: 1)".into())
        );
        assert!(slot(&[("apic-id", json!(9))])
            .unwrap_err()
            .starts_with("Invalid CPU [socket: 4"));
    }
}
