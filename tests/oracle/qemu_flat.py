#!/usr/bin/env python3
"""An independent oracle for `addrspace mtree BOARD -f`: QEMU's rendering, transcribed literally.

It reads a board file (TOML, the same format the library loads) and prints, for every address
space, the flat ranges QEMU 10.0.2 would render for it, in the `info mtree -f` line format:

    AS "cpu-memory-0"
      0000000000000000-00000000003fffff (prio 0, ram): ssram-0
      ...

It shares no code and no algorithm with the Rust renderer: this is QEMU's own recursive
`render_memory_region` (memory.c) with its gap fill that scans the view from index 0 and inserts
(O(n^2)), its subregion list kept in QEMU's insertion order (before the first sibling whose
priority is <= the new one), `memory_region_get_flatview_root`, and `flatview_simplify` — as
`shared/spec/qemu-memory.md` §2 and §3.1 describe them. Aliases into their own ancestors need
nothing special: the recursion ends because the clip shrinks, exactly as in QEMU (a cycle that
does not shift the window would recurse forever here too; the library refuses those).

CPU clusters and `[[cpu-root]]` templates are expanded as `board_cpus.rs` documents them
(`in`, `cpu-alias`, `{cpu}` names), CPUs numbered from 0 across clusters in order.

Used by `crates/addrspace/tests/qemu_oracle.rs` (every board in `boards/`, and random boards
with aliases into their ancestors); run by hand as
`python3 tests/oracle/qemu_flat.py boards/mps2-an521.toml` (several files: each output starts
with `== PATH`).
"""

import sys
import tomllib

SIZE_2_64 = 1 << 64


def number(v):
    if isinstance(v, int):
        return v
    s = v.strip().replace("_", "")
    if s.startswith("2^"):
        return 1 << int(s[2:])
    low = s.lower()
    for suffix in ("ib", "b"):
        if low.endswith(suffix) and not low.startswith("0x"):
            low = low[: -len(suffix)]
    shift = 0
    if low and low[-1] in "kmgtpe" and not (low.startswith("0x") and low[-1] == "e"):
        shift = 10 * (1 + "kmgtpe".index(low[-1]))
        low = low[:-1]
    val = int(low, 16) if low.startswith("0x") else int(low)
    return val << shift


class MR:
    def __init__(self, name, kind, size):
        self.name = name
        self.kind = kind  # container ram rom rom-device ram-device io reservation alias
        self.size = size
        self.addr = 0
        self.priority = 0
        self.enabled = True
        self.readonly = kind == "rom"
        self.nonvolatile = False
        self.unmergeable = False
        self.romd = True
        self.container = None
        self.subregions = []  # QEMU's list order
        self.alias = None
        self.alias_offset = 0

    def terminates(self):
        return self.kind not in ("container", "alias")


def add_subregion(container, child, addr, priority):
    """memory_region_add_subregion_overlap: insert before the first sibling with prio <= new."""
    assert child.container is None, f"{child.name} mapped twice"
    child.container = container
    child.addr = addr
    child.priority = priority
    for i, other in enumerate(container.subregions):
        if child.priority >= other.priority:
            container.subregions.insert(i, child)
            return
    container.subregions.append(child)


class FR:
    def __init__(self, mr, start, size, offset, ro, nv, um):
        self.mr, self.start, self.size, self.offset = mr, start, size, offset
        self.ro, self.nv, self.um = ro, nv, um
        self.romd = mr.romd


def render(view, mr, base, clip, ro, nv, um):
    """render_memory_region, step by step (spec 2.2)."""
    if not mr.enabled:
        return
    base += mr.addr
    ro, nv, um = ro or mr.readonly, nv or mr.nonvolatile, um or mr.unmergeable
    lo, hi = max(clip[0], base), min(clip[1], base + mr.size)
    if lo >= hi:
        return
    clip = (lo, hi)
    if mr.kind == "alias":
        base -= mr.alias.addr + mr.alias_offset
        render(view, mr.alias, base, clip, ro, nv, um)
        return
    for sub in mr.subregions:
        render(view, sub, base, clip, ro, nv, um)
    if not mr.terminates():
        return
    # Gap fill: claim every part of clip not yet covered, scanning the view from index 0.
    b, remain, off = clip[0], clip[1] - clip[0], clip[0] - base
    i = 0
    while i < len(view) and remain > 0:
        fr = view[i]
        if b >= fr.start + fr.size:
            i += 1
            continue
        if b < fr.start:
            n = min(remain, fr.start - b)
            view.insert(i, FR(mr, b, n, off, ro, nv, um))
            i += 1
            b, off, remain = b + n, off + n, remain - n
        if remain == 0:
            break
        skip = min(remain, fr.start + fr.size - b)
        b, off, remain = b + skip, off + skip, remain - skip
        i += 1
    if remain > 0:
        view.insert(i, FR(mr, b, remain, off, ro, nv, um))


def simplify(view):
    out = []
    for fr in view:
        p = out[-1] if out else None
        if (
            p is not None
            and p.start + p.size == fr.start
            and p.mr is fr.mr
            and p.offset + p.size == fr.offset
            and (p.romd, p.ro, p.nv) == (fr.romd, fr.ro, fr.nv)
            and not p.um
            and not fr.um
        ):
            p.size += fr.size
        else:
            out.append(fr)
    return out


def flatview_root(mr):
    """memory_region_get_flatview_root."""
    while mr.enabled:
        if mr.kind == "alias":
            if mr.alias_offset == 0 and mr.size >= mr.alias.size:
                mr = mr.alias
                continue
            return mr
        if mr.kind == "container":
            enabled = [c for c in mr.subregions if c.enabled]
            if not enabled:
                return None
            if len(enabled) == 1 and enabled[0].addr == 0 and mr.size >= enabled[0].size:
                mr = enabled[0]
                continue
        return mr
    return None


def type_word(fr):
    if fr.ro:
        word = "rom"
    else:
        word = {
            "ram": "ram",
            "rom": "rom",
            "ram-device": "ramd",
            "rom-device": "romd" if fr.mr.romd else "i/o",
        }.get(fr.mr.kind, "i/o")
    return ("nv-" if fr.nv else "") + word


def flat_lines(root):
    phys = flatview_root(root)
    view = []
    if phys is not None:
        render(view, phys, 0, (0, SIZE_2_64), False, False, False)
    lines = []
    for fr in simplify(view):
        text = f"  {fr.start:016x}-{fr.start + fr.size - 1:016x} (prio {fr.mr.priority}, {type_word(fr)}): {fr.mr.name}"
        if fr.offset:
            text += f" @{fr.offset:016x}"
        lines.append(text)
    return lines


def load(path):
    with open(path, "rb") as f:
        desc = tomllib.load(f)
    regions = {}
    order = []
    for r in desc.get("region", []):
        key = r.get("id", r["name"])
        mr = MR(r["name"], r["type"], number(r["size"]))
        mr.enabled = r.get("enabled", True)
        mr.readonly = r.get("readonly", False) or r["type"] == "rom"
        mr.nonvolatile = r.get("nonvolatile", False)
        mr.unmergeable = r.get("unmergeable", False)
        mr.romd = r.get("romd", True)
        if "addr" in r:
            mr.addr = number(r["addr"])
        if "priority" in r:
            mr.priority = r["priority"]
        regions[key] = mr
        order.append((key, r))
    for key, r in order:
        if r["type"] == "alias":
            regions[key].alias = regions[r["target"]]
            regions[key].alias_offset = number(r.get("offset", 0))
    for key, r in order:
        for p in r.get("subregions", []):
            add_subregion(regions[key], regions[p["region"]], number(p.get("addr", 0)), p.get("priority", 0))
    spaces = [(s["name"], regions[s["root"]]) for s in desc.get("address-space", [])]
    board_spaces = dict(spaces)
    templates = {t.get("id", t["name"]): t for t in desc.get("cpu-root", [])}
    cpu = 0
    for c in desc.get("cluster", []):
        plugged = c.get("cpus", c["max-cpus"])
        first = c.get("first-index", 0) or cpu
        cpu = first + c["max-cpus"]
        for slot in range(plugged):
            index = first + slot
            roots = {}
            for s in c["spaces"]:
                if "root" in s:
                    root = regions[s["root"]]
                elif "shared" in s:
                    continue  # the board's own space, listed already
                elif "same-root-as" in s:
                    root = roots[s["same-root-as"]]
                else:
                    root = build_cpu_root(templates[s["per-cpu"]], regions, index)
                roots[s["index"]] = root
                spaces.append((f"{s['prefix']}-{index}", root))
    del board_spaces
    return spaces


def build_cpu_root(t, regions, cpu):
    named = lambda n: n.replace("{cpu}", str(cpu))
    root = MR(named(t["name"]), "container", number(t["size"]))
    local = {t.get("id", t["name"]): root}
    for e in t.get("subregions", []):
        name = named(e["name"])
        if "alias" in e or "cpu-alias" in e:
            target = regions[e["alias"]] if "alias" in e else local[e["cpu-alias"]]
            mr = MR(name, "alias", number(e["size"]) if "size" in e else target.size)
            mr.alias, mr.alias_offset = target, number(e.get("offset", 0))
        elif "io" in e:
            mr = MR(name, "io", number(e["io"]))
        elif "ram" in e:
            mr = MR(name, "ram", number(e["ram"]))
        else:
            mr = MR(name, "container", number(e["container"]))
        local[e.get("id", e["name"])] = mr
        parent = local[e["in"]] if "in" in e else root
        add_subregion(parent, mr, number(e.get("addr", 0)), e.get("priority", 0))
    return root


def main():
    sys.setrecursionlimit(100000)
    many = len(sys.argv) > 2
    for path in sys.argv[1:]:
        if many:
            print(f"== {path}")
        for name, root in load(path):
            print(f'AS "{name}"')
            for line in flat_lines(root):
                print(line)


if __name__ == "__main__":
    main()
