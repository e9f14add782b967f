#!/usr/bin/env python3
"""One fixed walk through a QMP server, printed as a JSON-lines transcript.

Why: issue 14 asks for a monitor that speaks QEMU's QMP exactly. This script talks to a QMP
socket over a raw stream (not a QMP library) so that it can send malformed input and see every
byte that comes back, then prints one JSON line per step:

    {"step": NAME, "sent": <the JSON value, or the raw text when the bytes sent are not exactly
                            that value's json.dumps plus "\n">,
     "received": [<each JSON value received, events included, in arrival order>],
     "raw": [<the exact text of each value, line terminator included>], ...}

Optional members: "closed" (the server closed the connection), "note", "other" (what a second
client received during the step), "received_count" (when more values arrived than are kept).
Strings longer than 4096 characters (the 1 MiB steps) are abbreviated to
"<abbreviated N chars: HEAD...TAIL>" in "sent", "received" and "raw"; their JSON type is kept.

The same walk runs against QEMU (`--target qemu`) and against `addrspace run` (`--target
addrspace`); `tests/qmp/shape.py` compares two transcripts. The CPU type, the boot CPU's QOM path
and the free slots are discovered from the server's own replies, so nothing board-specific is
hard-coded. The target flag changes only how long a CPU unplug is waited for: QEMU without a
guest OS never completes one, addrspace completes it at once.

Usage:
    python3 tests/qmp/qmp_walk.py --target qemu /tmp/q.sock --second /tmp/q2.sock \
        [--hmp-dir DIR] > transcript.jsonl
"""

import argparse
import json
import os
import socket
import sys
import time

ABBREVIATE = 4096
QUIET = 0.3  # seconds of silence that end a step once its replies are in
# Multiplies every such silence (--linger-scale): QEMU emits some events from its main loop a
# little after a reply; a server whose events are synchronous needs far less.
LINGER_SCALE = 1.0
MAX_KEEP = 50  # received values kept per step (junk can produce many replies)


def abbreviate(value):
    """Returns `value` with every string longer than ABBREVIATE shortened, types kept."""
    if isinstance(value, str) and len(value) > ABBREVIATE:
        return f"<abbreviated {len(value)} chars: {value[:40]}...{value[-40:]}>"
    if isinstance(value, list):
        return [abbreviate(v) for v in value]
    if isinstance(value, dict):
        return {k: abbreviate(v) for k, v in value.items()}
    return value


def is_reply(value):
    """A reply to a command (as opposed to an event or the greeting)."""
    return isinstance(value, dict) and ("return" in value or "error" in value)


class Client:
    """One QMP connection read as a stream of JSON values with their raw text."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = ""
        self.closed = False
        self.decoder = json.JSONDecoder()

    def send(self, text):
        self.sock.settimeout(60.0)
        self.sock.sendall(text if isinstance(text, bytes) else text.encode())

    def _take(self):
        """Pops every complete JSON value from the buffer as (value, raw text)."""
        out = []
        while True:
            stripped = self.buf.lstrip()
            if not stripped:
                break
            start = len(self.buf) - len(stripped)
            try:
                value, end = self.decoder.raw_decode(self.buf, start)
            except json.JSONDecodeError:
                break
            # Keep the line terminator (whatever it is) with the value it ends.
            stop = end
            while stop < len(self.buf) and self.buf[stop] in " \t\r\n":
                stop += 1
                if self.buf[stop - 1] == "\n":
                    break
            out.append((value, self.buf[start:stop]))
            self.buf = self.buf[stop:]
        return out

    def collect(self, replies=0, events=(), linger=QUIET, limit=5.0):
        """Reads until `replies` replies and the named `events` arrived and the line is quiet.

        Returns (values, raws). Stops early when the server closes the connection.
        """
        values, raws = [], []
        want_events = list(events)
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while not self.closed:
            got_replies = sum(1 for v in values if is_reply(v))
            done = got_replies >= replies and not want_events
            now = time.monotonic()
            if now >= deadline or (done and now - last >= linger):
                break
            wait = min(deadline - now, linger if done else 0.1)
            self.sock.settimeout(max(wait, 0.01))
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                self.closed = True
                break
            if not data:
                self.closed = True
            self.buf += data.decode(errors="replace")
            last = time.monotonic()
            for value, raw in self._take():
                values.append(value)
                raws.append(raw)
                if isinstance(value, dict) and value.get("event") in want_events:
                    want_events.remove(value["event"])
        return values, raws

    def close(self):
        self.sock.close()


class Walk:
    """Runs named steps on clients and prints one transcript line per step."""

    def __init__(self, args):
        self.args = args
        self.hmp_dir = args.hmp_dir

    def emit(self, record):
        print(json.dumps(abbreviate(record)), flush=True)

    def step(self, client, name, sent, replies=1, events=(), linger=QUIET, limit=5.0,
             note=None, other=None):
        """Sends `sent` (a JSON value, or raw text when a str) and records what comes back."""
        if isinstance(sent, bytes):
            # Bytes that are not UTF-8: sent as they are, recorded with escapes.
            text = sent
            recorded = sent.decode(errors="backslashreplace")
        elif isinstance(sent, str):
            text = sent
            recorded = sent
            try:
                # Recorded as JSON only when that is exactly what was sent.
                value = json.loads(sent)
                if json.dumps(value) + "\n" == sent:
                    recorded = value
            except (ValueError, RecursionError):
                pass
        elif sent is None:
            text, recorded = "", None
        else:
            text = json.dumps(sent) + "\n"
            recorded = sent
        if text:
            client.send(text)
        values, raws = client.collect(replies, events, linger * LINGER_SCALE, limit)
        record = {"step": name, "sent": recorded}
        if len(text) > ABBREVIATE:
            record["sent_bytes"] = len(text.encode())
        record["received"] = values[:MAX_KEEP]
        record["raw"] = raws[:MAX_KEEP]
        if len(values) > MAX_KEEP:
            record["received_count"] = len(values)
        if client.closed:
            record["closed"] = True
        if other is not None:
            ovalues, _ = other.collect(0, (), QUIET * LINGER_SCALE, 2.0)
            record["other"] = ovalues
        if note:
            record["note"] = note
        self.emit(record)
        return values

    def ret(self, values):
        """The `return` member of the first reply in `values`, or None."""
        for v in values:
            if is_reply(v):
                return v.get("return")
        return None

    def run(self):
        a = self.args
        # Session 1: negotiation with OOB, then a client that leaves mid-command.
        c = Client(a.socket)
        self.step(c, "greeting", None, replies=0)
        self.step(c, "before_negotiation", {"execute": "query-status"})
        values = self.step(c, "qmp_capabilities_oob",
                           {"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}})
        if not any(is_reply(v) and "return" in v for v in values):
            # A server that offers no OOB refuses it; negotiate without to go on.
            self.step(c, "qmp_capabilities_after_oob_refused", {"execute": "qmp_capabilities"})
        self.step(c, "exec_oob_query_status", {"exec-oob": "query-status", "id": 1})
        self.step(c, "exec_oob_without_id", {"exec-oob": "query-status"})
        self.step(c, "oob_session_execute_without_id", {"execute": "query-status"})
        c.send('{"execute": "query-st')
        c.close()
        time.sleep(0.5)

        # Session 2: the main walk.
        c = Client(a.socket)
        self.step(c, "greeting_again", None, replies=0,
                  note="second session, after a client left in the middle of a command")
        self.step(c, "qmp_capabilities", {"execute": "qmp_capabilities"})
        self.step(c, "qmp_capabilities_again", {"execute": "qmp_capabilities"})
        self.step(c, "qmp_capabilities_unknown_capability",
                  {"execute": "qmp_capabilities", "arguments": {"enable": ["nosuch"]}})
        self.step(c, "exec_oob_without_oob_negotiated", {"exec-oob": "query-status", "id": 1})
        self.step(c, "query_status", {"execute": "query-status"})
        self.step(c, "stop", {"execute": "stop"}, events=["STOP"])
        self.step(c, "query_status_stopped", {"execute": "query-status"})
        self.step(c, "stop_again", {"execute": "stop"})
        self.step(c, "cont", {"execute": "cont"}, events=["RESUME"])
        self.step(c, "cont_again", {"execute": "cont"})
        self.step(c, "query_version", {"execute": "query-version"})
        self.query_commands(c)
        self.step(c, "x_query_live_objects", {"execute": "x-query-live-objects"})
        cpus = self.ret(self.step(c, "query_cpus_fast", {"execute": "query-cpus-fast"}))
        slots = self.ret(self.step(c, "query_hotpluggable_cpus",
                                   {"execute": "query-hotpluggable-cpus"}))
        self.cpu_steps(c, cpus or [], slots or [])
        self.hmp_steps(c)
        self.protocol_errors(c)
        self.two_clients(c)

    def run_device_deleted(self):
        """The DEVICE_DELETED event's exact shape, from a device whose unplug needs no guest.

        Needs a server started with `-device virtio-serial-pci,id=vs0`: a virtserialport on its
        bus unplugs synchronously, so QEMU emits DEVICE_DELETED without any guest help.
        """
        c = Client(self.args.socket)
        self.step(c, "greeting", None, replies=0)
        self.step(c, "qmp_capabilities", {"execute": "qmp_capabilities"})
        self.step(c, "device_add_port_with_id", {"execute": "device_add", "arguments": {
            "driver": "virtserialport", "bus": "vs0.0", "id": "port1"}})
        self.step(c, "device_del_port_by_id", {"execute": "device_del", "arguments": {
            "id": "port1"}}, events=["DEVICE_DELETED"])
        self.step(c, "device_add_port_without_id", {"execute": "device_add", "arguments": {
            "driver": "virtserialport", "bus": "vs0.0"}})
        path = None
        tree = self.ret(self.step(c, "qom_list_peripheral_anon", {
            "execute": "qom-list", "arguments": {"path": "/machine/peripheral-anon"}}))
        for entry in tree or []:
            if isinstance(entry, dict) and str(entry.get("type", "")).startswith("child<"):
                path = "/machine/peripheral-anon/" + entry["name"]
        self.step(c, "device_del_port_by_qom_path", {"execute": "device_del", "arguments": {
            "id": path or "/machine/peripheral-anon/device[0]"}}, events=["DEVICE_DELETED"])
        self.step(c, "quit", {"execute": "quit"}, events=["SHUTDOWN"], linger=1.0)

    def query_commands(self, c):
        """Records query-commands by shape: the member names, count, and our commands present."""
        c.send(json.dumps({"execute": "query-commands"}) + "\n")
        values, raws = c.collect(1, linger=QUIET * LINGER_SCALE)
        names = []
        shaped = []
        for v in values:
            if is_reply(v) and isinstance(v.get("return"), list):
                names = [e.get("name") for e in v["return"] if isinstance(e, dict)]
                first = v["return"][0] if v["return"] else {}
                shaped.append({"return": [first]})
            else:
                shaped.append(v)
        wanted = ["qmp_capabilities", "query-status", "stop", "cont", "quit", "query-version",
                  "query-commands", "query-cpus-fast", "query-hotpluggable-cpus", "device_add",
                  "device_del", "human-monitor-command"]
        self.emit({"step": "query_commands", "sent": {"execute": "query-commands"},
                   "received": shaped,
                   "note": "reply reduced to its first element; see 'commands'",
                   "command_count": len(names),
                   "commands_present": {n: n in names for n in wanted},
                   "x_commands": sorted(n for n in names if n.startswith("x-"))})

    def cpu_steps(self, c, cpus, slots):
        free = [s for s in slots if isinstance(s, dict) and "qom-path" not in s]
        used = [s for s in slots if isinstance(s, dict) and "qom-path" in s]
        driver = (slots[0].get("type") if slots and isinstance(slots[0], dict)
                  else "qemu64-x86_64-cpu")
        boot = cpus[0].get("qom-path") if cpus and isinstance(cpus[0], dict) else "/machine/cpu"
        # The free slots listed last are the lowest ids: plug those first.
        free.reverse()
        first = dict(free[0]["props"]) if free else {"core-id": 1}
        second = dict(free[1]["props"]) if len(free) > 1 else {"core-id": 2}
        occupied = dict(used[0]["props"]) if used else {"core-id": 0}
        out_of_range = dict(first)
        key = "core-id" if "core-id" in first else sorted(first)[0]
        out_of_range[key] = 99

        def add(name, args, **kw):
            return self.step(c, name, {"execute": "device_add", "arguments": args}, **kw)

        add("device_add_free_slot", dict({"driver": driver, "id": "cpu1"}, **first))
        add("device_add_duplicate_id", dict({"driver": driver, "id": "cpu1"}, **second))
        add("device_add_occupied_slot", dict({"driver": driver, "id": "cpux"}, **occupied))
        add("device_add_without_ids", {"driver": driver, "id": "cpux"})
        partial = {k: v for k, v in second.items() if k != "socket-id"}
        add("device_add_partial_ids", dict({"driver": driver, "id": "cpux"}, **partial))
        add("device_add_id_out_of_range", dict({"driver": driver, "id": "cpux"}, **out_of_range))
        add("device_add_unknown_property",
            dict({"driver": driver, "id": "cpux", "nosuch-prop": 1}, **second))
        add("device_add_unknown_driver", dict({"driver": "nosuch-cpu", "id": "cpux"}, **second))
        add("device_add_without_driver", dict({"id": "cpux"}, **second))
        add("device_add_driver_not_string", dict({"driver": 1, "id": "cpux"}, **second))
        add("device_add_prop_wrong_type", dict({"driver": driver, "id": "cpux"},
                                                **{k: "one" for k in second}))
        add("device_add_without_qdev_id", dict({"driver": driver}, **second))
        slots_after = self.ret(self.step(c, "query_hotpluggable_cpus_after_add",
                                         {"execute": "query-hotpluggable-cpus"}))
        self.step(c, "query_cpus_fast_after_add", {"execute": "query-cpus-fast"})
        anon = None
        for s in slots_after or []:
            if isinstance(s, dict) and s.get("props") == second:
                anon = s.get("qom-path")
        completes = self.args.target != "qemu"
        if not completes:
            # q35 starts in legacy CPU hotplug mode, which cannot unplug; a guest's ACPI code
            # switches it to the modern interface. Without a guest, flip the property instead.
            self.step(c, "qemu_device_del_legacy_cpu_hotplug",
                      {"execute": "device_del", "arguments": {"id": "cpu1"}})
            self.step(c, "qemu_switch_to_modern_cpu_hotplug",
                      {"execute": "qom-set", "arguments": {
                          "path": "/machine/acpi-device", "property": "cpu-hotplug-legacy",
                          "value": False}})
        self.step(c, "device_del_by_id", {"execute": "device_del", "arguments": {"id": "cpu1"}},
                  events=["DEVICE_DELETED"] * completes, linger=2.0, limit=4.0,
                  note="waited ~2 s for DEVICE_DELETED")
        self.step(c, "query_hotpluggable_cpus_after_del", {"execute": "query-hotpluggable-cpus"})
        self.step(c, "device_del_by_id_again",
                  {"execute": "device_del", "arguments": {"id": "cpu1"}})
        self.step(c, "device_del_by_qom_path",
                  {"execute": "device_del", "arguments": {"id": anon or "/machine/none"}},
                  events=["DEVICE_DELETED"] * completes, linger=2.0, limit=4.0,
                  note="the CPU added without a qdev id, by its qom-path")
        self.step(c, "device_del_boot_cpu",
                  {"execute": "device_del", "arguments": {"id": boot}})
        self.step(c, "device_del_unknown_id",
                  {"execute": "device_del", "arguments": {"id": "nosuch"}})
        self.step(c, "device_del_unknown_qom_path",
                  {"execute": "device_del", "arguments": {"id": "/machine/nosuch"}})
        self.step(c, "device_del_id_missing", {"execute": "device_del", "arguments": {}})
        self.step(c, "device_del_id_missing_no_arguments", {"execute": "device_del"})
        self.step(c, "device_del_id_not_string",
                  {"execute": "device_del", "arguments": {"id": 1}})
        self.step(c, "query_cpus_fast_after_del", {"execute": "query-cpus-fast"})
        self.driver = driver
        self.first = first

    def hmp_steps(self, c):
        self.hmp(c, "hmp_info_cpus", "info cpus", "hmp-info-cpus.txt")
        self.hmp(c, "hmp_info_hotpluggable_cpus", "info hotpluggable-cpus",
                 "hmp-info-hotpluggable-cpus.txt")
        self.hmp(c, "hmp_info_status", "info status", "hmp-info-status.txt")
        self.hmp(c, "hmp_info_version", "info version", "hmp-info-version.txt")
        self.hmp(c, "hmp_info_mtree_f", "info mtree -f", "hmp-info-mtree-f.txt")
        self.hmp(c, "hmp_info_mtree", "info mtree", "hmp-info-mtree.txt")
        self.hmp(c, "hmp_info_unknown", "info nosuch", "hmp-info-unknown.txt")
        self.hmp(c, "hmp_unknown_command", "nosuch", "hmp-unknown-command.txt")
        self.hmp(c, "hmp_empty_command", "", "hmp-empty-command.txt")
        props = ",".join(f"{k}={v}" for k, v in self.first.items())
        self.hmp(c, "hmp_device_add_bad_property",
                 f"device_add {self.driver},{props},id=hcpu,nosuch-prop=1",
                 "hmp-device-add-bad-property.txt")
        self.hmp(c, "hmp_device_add_missing_driver", "device_add",
                 "hmp-device-add-missing-driver.txt")
        self.hmp(c, "hmp_device_del_unknown", "device_del nosuch", "hmp-device-del-unknown.txt")
        self.hmp(c, "hmp_info_cpus_cpu_index_0", "info cpus", **{"cpu-index": 0})
        self.hmp(c, "hmp_info_cpus_cpu_index_1", "info cpus", **{"cpu-index": 1})
        self.hmp(c, "hmp_info_cpus_cpu_index_99", "info cpus", **{"cpu-index": 99})
        self.hmp(c, "hmp_info_cpus_cpu_index_negative", "info cpus", **{"cpu-index": -1})
        self.hmp(c, "hmp_info_cpus_cpu_index_string", "info cpus", **{"cpu-index": "0"})
        self.step(c, "hmp_command_line_missing",
                  {"execute": "human-monitor-command", "arguments": {}})
        self.step(c, "hmp_command_line_not_string",
                  {"execute": "human-monitor-command", "arguments": {"command-line": 1}})
        self.hmp(c, "hmp_stop", "stop", events=["STOP"])
        self.hmp(c, "hmp_info_status_stopped", "info status")
        self.hmp(c, "hmp_cont", "cont", events=["RESUME"])

    def hmp(self, client, name, command_line, save=None, events=(), **extra):
        values = self.step(client, name, {
            "execute": "human-monitor-command",
            "arguments": dict({"command-line": command_line}, **extra)}, events=events)
        text = self.ret(values)
        if self.hmp_dir and save and isinstance(text, str):
            with open(os.path.join(self.hmp_dir, save), "w", newline="") as f:
                f.write(text)
        return text

    def probe(self, c, after):
        """A valid command after bad input: is the session still usable?"""
        return self.step(c, f"{after}.after", {"execute": "query-status", "id": f"after-{after}"},
                         linger=0.5, limit=3.0)

    def probe_or_resync(self, c, after):
        """Probes; when the probe is swallowed by an open object, closes it and probes again."""
        values = self.probe(c, after)
        if not any(is_reply(v) and v.get("id") == f"after-{after}" for v in values):
            self.step(c, f"{after}.resync", "}\n", linger=0.5, limit=2.0,
                      note="the probe got no reply: close the open object")
            self.probe(c, f"{after}.resync")

    def protocol_errors(self, c):
        cases = [
            ("malformed_json_then_valid",
             '{"execute":\n{"execute":"query-status","id":"valid"}\n'),
            ("junk_text", "hello world\n"),
            ("json_array", '["query-status"]\n'),
            ("json_number", "42\n"),
            ("json_string", '"query-status"\n'),
            ("json_null", "null\n"),
            ("empty_object", "{}\n"),
            ("execute_not_string", '{"execute": 1}\n'),
            ("arguments_array", '{"execute": "query-status", "arguments": []}\n'),
            ("unexpected_member", '{"execute": "query-status", "foo": 1}\n'),
            ("lacks_execute_with_id", '{"id": "x1"}\n'),
            ("execute_not_string_with_id", '{"execute": 1, "id": "x2"}\n'),
            ("unexpected_member_with_id", '{"execute": "query-status", "foo": 1, "id": "x3"}\n'),
            ("bad_argument_with_id",
             '{"execute": "query-status", "arguments": {"foo": 1}, "id": "x4"}\n'),
            ("id_string", '{"execute": "query-status", "id": "abc"}\n'),
            ("id_number", '{"execute": "query-status", "id": 42}\n'),
            ("id_float", '{"execute": "query-status", "id": 1.5}\n'),
            ("id_object", '{"execute": "query-status", "id": {"a": [1, null]}}\n'),
            ("id_on_error", '{"execute": "nosuch", "id": "e1"}\n'),
            ("unknown_command", '{"execute": "nosuch-command"}\n'),
            ("query_status_unexpected_argument",
             '{"execute": "query-status", "arguments": {"foo": 1}}\n'),
            ("two_commands_one_line",
             '{"execute": "query-status", "id": 1}{"execute": "query-status", "id": 2}\n'),
            ("command_without_newline", '{"execute": "query-status", "id": "nonl"}'),
            ("crlf_line_ending", '{"execute": "query-status", "id": "crlf"}\r\n'),
            ("single_quotes", "{'execute': 'query-status', 'id': 'sq'}\n"),
            ("stray_close_brace", "}\n"),
            ("extra_close_brace", '{"execute": "query-status", "id": "a"}}\n'),
            ("empty_line", "\n"),
            ("invalid_utf8", b"\xff\n"),
            ("non_ascii_outside_string", "\u00e9\n"),
            ("control_char_in_string", '{"execute": "query-status", "id": "a\x01b"}\n'),
            ("raw_tab_in_string", '{"execute": "query-status", "id": "tab\there"}\n'),
            ("invalid_escape", '{"execute": "query-status", "id": "\\x"}\n'),
            ("escapes_in_string", '{"execute": "query-status", "id": "nl\\n/\\/\\u00e9"}\n'),
            ("non_ascii_id", '{"execute": "query-status", "id": "\u00e9\\ud83d\\ude00"}\n'),
            ("arguments_null", '{"execute": "query-status", "arguments": null}\n'),
            ("duplicate_key", '{"execute": "stop", "execute": "query-status"}\n'),
            ("leading_zeros", '{"execute": "query-status", "id": 007}\n'),
            ("id_float_0_1", '{"execute": "query-status", "id": 0.1}\n'),
            ("id_float_1_0", '{"execute": "query-status", "id": 1.0}\n'),
            ("id_exponent", '{"execute": "query-status", "id": 1e3}\n'),
            ("id_negative", '{"execute": "query-status", "id": -1}\n'),
            ("id_u64_max", '{"execute": "query-status", "id": 18446744073709551615}\n'),
            ("id_huge_integer", '{"execute": "query-status", "id": 99999999999999999999999}\n'),
            ("id_true", '{"execute": "query-status", "id": true}\n'),
            ("id_null", '{"execute": "query-status", "id": null}\n'),
            ("id_empty_array", '{"execute": "query-status", "id": []}\n'),
            ("spaces_around_tokens", '{ "execute" : "query-status" , "id" : 7 }\n'),
            ("nesting_1024", "[" * 1024 + "]" * 1024 + "\n"),
            ("nesting_1025", "[" * 1025 + "]" * 1025 + "\n"),
            ("twelve_commands_one_write",
             "".join('{"execute": "query-status", "id": %d}' % i for i in range(12)) + "\n"),
            ("unterminated_string", '{"execute": "query-status", "id": "abc\n'),
        ]
        for name, text in cases:
            self.step(c, name, text, replies=1, linger=0.5, limit=2.0)
            self.probe_or_resync(c, name)
        huge_id = "i" * (1 << 20)
        self.step(c, "huge_valid_command",
                  json.dumps({"execute": "query-status", "id": huge_id}) + "\n",
                  limit=10.0, linger=0.5)
        self.probe_or_resync(c, "huge_valid_command")
        self.step(c, "huge_junk_line", "x" * (1 << 20) + "\n", limit=20.0, linger=2.0)
        self.probe_or_resync(c, "huge_junk_line")

    def two_clients(self, c):
        a = self.args
        # A second connection to the same socket while the first is open.
        same = Client(a.socket)
        v, _ = same.collect(0, (), 1.0 * LINGER_SCALE, 1.0)
        self.emit({"step": "second_client_same_socket", "sent": None, "received": v,
                   "note": "connected to the first socket while session 2 is open; waited 1 s"})
        same.close()
        d = Client(a.second or a.socket)
        self.step(d, "second_client_greeting", None, replies=0)
        self.step(d, "second_client_qmp_capabilities", {"execute": "qmp_capabilities"})
        self.step(c, "two_clients_stop", {"execute": "stop"}, events=["STOP"], other=d)
        self.step(d, "two_clients_query_status_from_second", {"execute": "query-status"})
        self.step(c, "two_clients_cont", {"execute": "cont"}, events=["RESUME"], other=d)
        self.step(c, "quit", {"execute": "quit"}, events=["SHUTDOWN"], linger=1.0,
                  limit=5.0, other=d)
        if not c.closed:
            v, _ = c.collect(0, (), 1.0 * LINGER_SCALE, 3.0)
            self.emit({"step": "quit_wait_close", "sent": None, "received": v,
                       "closed": c.closed})
        v, _ = d.collect(0, (), 1.0 * LINGER_SCALE, 3.0)
        self.emit({"step": "quit_second_client_after", "sent": None, "received": v,
                   "closed": d.closed})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("socket", help="QMP unix socket path")
    p.add_argument("--target", choices=["qemu", "addrspace"], required=True,
                   help="which server: QEMU never completes a CPU unplug without a guest")
    p.add_argument("--second", help="socket for the second client (default: the same socket)")
    p.add_argument("--hmp-dir", help="directory to save HMP texts as .txt files")
    p.add_argument("--linger-scale", type=float, default=1.0,
                   help="multiply the silence that ends each step (default 1; our tests use 0.1)")
    p.add_argument("--walk", choices=["main", "device-deleted"], default="main",
                   help="main: the fixed walk; device-deleted: DEVICE_DELETED's shape (QEMU "
                   "started with -device virtio-serial-pci,id=vs0)")
    args = p.parse_args()
    global LINGER_SCALE
    LINGER_SCALE = args.linger_scale
    walk = Walk(args)
    if args.walk == "main":
        walk.run()
    else:
        walk.run_device_deleted()


if __name__ == "__main__":
    sys.exit(main())
