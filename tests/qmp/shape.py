#!/usr/bin/env python3
"""Compares two qmp_walk.py transcripts shape for shape.

Why: our monitor must answer like QEMU without producing the same strings and numbers (thread
ids, timestamps, version, HMP texts of a different machine). Two transcripts have the same shape
when they have the same steps and, per step, the received values match recursively: objects have
the same member names in the same order, lists the same length, every value the same JSON type
(null, boolean, number, string, array, object). Some values must be equal, not just typed alike:
error classes (`error.class`), event names (`event`), the `closed` flag, and the
`commands_present` map of `query_commands`.

Deliberate differences are declared in a TOML file (default: declared-differences.toml next to
this script):

    [[difference]]
    step = "device_del_by_id"   # pattern on the step name (`*`, `?`; brackets are literal)
    path = "received[1]*"       # pattern on the difference's path ("" = the step itself)
    why = "one line"

Usage: python3 tests/qmp/shape.py QEMU.jsonl OURS.jsonl [--declared FILE] [--verbose]
Prints the differences per step; exits 1 when an undeclared one remains.
"""

import argparse
import fnmatch
import json
import os
import sys
import tomllib

# Values that must be equal, not just of the same type: (parent member, member) pairs.
EXACT = {("error", "class"), ("", "event")}
# Record members compared besides "received".
COMPARED = ("received", "other", "closed", "commands_present")


def json_type(value):
    """The JSON type name of a decoded value (bool is not a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def compare(a, b, path, parent, out):
    """Appends (path, message) for every shape difference between a and b."""
    ta, tb = json_type(a), json_type(b)
    if ta != tb:
        out.append((path, f"type {ta} vs {tb}"))
        return
    if ta == "object":
        ka, kb = list(a), list(b)
        if ka != kb:
            out.append((path, f"members {ka} vs {kb}"))
        for key in ka:
            if key in b:
                child = f"{path}.{key}" if path else key
                if (parent, key) in EXACT and a[key] != b[key]:
                    out.append((child, f"value {a[key]!r} vs {b[key]!r}"))
                compare(a[key], b[key], child, key, out)
    elif ta == "array":
        if len(a) != len(b):
            out.append((path, f"length {len(a)} vs {len(b)}"))
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", parent if parent else "", out)


def compare_records(ra, rb):
    """Differences between two records of the same step, as (path, message)."""
    out = []
    for member in COMPARED:
        if member not in ra and member not in rb:
            continue
        va, vb = ra.get(member), rb.get(member)
        if member in ("closed", "commands_present"):
            if va != vb:
                out.append((member, f"value {va!r} vs {vb!r}"))
            continue
        if va is None or vb is None:
            out.append((member, f"present {va is not None} vs {vb is not None}"))
            continue
        # Each received value is compared from the top: its members' parent is "".
        if len(va) != len(vb):
            out.append((member, f"length {len(va)} vs {len(vb)}"))
        for i, (x, y) in enumerate(zip(va, vb)):
            compare(x, y, f"{member}[{i}]", "", out)
    return out


def load(path):
    """A transcript as an ordered {step: record}."""
    records = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                record = json.loads(line)
                if record["step"] in records:
                    raise SystemExit(f"{path}:{number}: step {record['step']} repeated")
                records[record["step"]] = record
    return records


def load_declared(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        entries = tomllib.load(f).get("difference", [])
    for entry in entries:
        for key in ("step", "path", "why"):
            if key not in entry:
                raise SystemExit(f"{path}: a [[difference]] lacks '{key}': {entry}")
    return entries


def matches(text, pattern):
    """fnmatch with `*` and `?` only: brackets are literal (paths hold list indices)."""
    return fnmatch.fnmatchcase(text, pattern.replace("[", "[[]"))


def declared_for(declared, step, path):
    for entry in declared:
        if matches(step, entry["step"]) and matches(path, entry["path"]):
            return entry
    return None


def diff(a, b, declared):
    """All differences as (step, path, message, declaration or None), in step order."""
    found = []
    steps = list(a) + [s for s in b if s not in a]
    for step in steps:
        if step not in a or step not in b:
            where = "first" if step not in a else "second"
            found.append((step, "", f"step missing in the {where} transcript"))
            continue
        for path, message in compare_records(a[step], b[step]):
            found.append((step, path, message))
    return [(s, p, m, declared_for(declared, s, p)) for s, p, m in found]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first", help="reference transcript (QEMU)")
    p.add_argument("second", help="transcript to check (ours)")
    p.add_argument("--declared", default=os.path.join(here, "declared-differences.toml"),
                   help="declared differences (TOML); '' for none")
    p.add_argument("--verbose", action="store_true", help="also print declared differences")
    args = p.parse_args()
    declared = load_declared(args.declared)
    results = diff(load(args.first), load(args.second), declared)
    undeclared = 0
    last = None
    for step, path, message, entry in results:
        if entry and not args.verbose:
            continue
        if step != last:
            print(f"step {step}:")
            last = step
        where = path or "(step)"
        if entry:
            print(f"  declared  {where}: {message} -- {entry['why']}")
        else:
            undeclared += 1
            print(f"  DIFFERENT {where}: {message}")
    used = sum(1 for r in results if r[3])
    print(f"{undeclared} undeclared difference(s), {used} declared")
    return 1 if undeclared else 0


if __name__ == "__main__":
    sys.exit(main())
