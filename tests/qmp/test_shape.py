#!/usr/bin/env python3
"""Tests for shape.py on the QEMU reference transcript, so the comparison can be trusted.

Each test mutates a copy of tests/fixtures/qmp/qemu-10.0.2-q35.jsonl the way a wrong (or a
deliberately different) server would answer and checks what shape.py reports. Run:
`python3 tests/qmp/test_shape.py` (also run by crates/addrspace-monitor/tests/qmp_shape_tool.rs).
"""

import copy
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shape  # noqa: E402

FIXTURE = os.path.join(HERE, "..", "fixtures", "qmp", "qemu-10.0.2-q35.jsonl")
DECLARED = os.path.join(HERE, "declared-differences.toml")


def undeclared(a, b):
    return [(s, p, m) for s, p, m, d in shape.diff(a, b, shape.load_declared(DECLARED)) if not d]


def declared(a, b):
    return [(s, p, m) for s, p, m, d in shape.diff(a, b, shape.load_declared(DECLARED)) if d]


def first_reply(record):
    return next(v for v in record["received"] if shape.json_type(v) == "object"
                and ("return" in v or "error" in v))


class ShapeTest(unittest.TestCase):
    def setUp(self):
        self.qemu = shape.load(FIXTURE)
        self.ours = copy.deepcopy(self.qemu)

    def test_identical_transcripts_have_no_difference(self):
        self.assertEqual(shape.diff(self.qemu, self.ours, []), [])

    def test_other_strings_and_numbers_are_the_same_shape(self):
        reply = first_reply(self.ours["query_cpus_fast"])
        reply["return"][0]["thread-id"] = 1
        reply["return"][0]["qom-path"] = "/machine/elsewhere"
        first_reply(self.ours["device_del_unknown_id"])["error"]["desc"] = "other words"
        self.assertEqual(undeclared(self.qemu, self.ours), [])

    def test_member_order_is_compared(self):
        reply = first_reply(self.ours["query_status"])
        reply["return"] = dict(reversed(list(reply["return"].items())))
        found = undeclared(self.qemu, self.ours)
        self.assertEqual([(s, p) for s, p, _ in found], [("query_status", "received[0].return")])

    def test_error_class_is_compared_by_value(self):
        first_reply(self.ours["device_del_unknown_id"])["error"]["class"] = "GenericError"
        found = undeclared(self.qemu, self.ours)
        self.assertEqual([(s, p) for s, p, _ in found],
                         [("device_del_unknown_id", "received[0].error.class")])

    def test_json_types_are_compared(self):
        first_reply(self.ours["id_number"])["id"] = "42"
        found = undeclared(self.qemu, self.ours)
        self.assertEqual([(s, p) for s, p, _ in found], [("id_number", "received[0].id")])

    def test_event_names_and_missing_events_are_compared(self):
        self.ours["stop"]["received"][0]["event"] = "RESUME"
        self.ours["cont"]["received"].pop(0)
        found = undeclared(self.qemu, self.ours)
        self.assertIn(("stop", "received[0].event"), [(s, p) for s, p, _ in found])
        self.assertIn(("cont", "received"), [(s, p) for s, p, _ in found])

    def test_missing_step_and_closed_connection_are_reported(self):
        del self.ours["query_version"]
        self.ours["junk_text"]["closed"] = True
        found = [(s, p) for s, p, _ in undeclared(self.qemu, self.ours)]
        self.assertIn(("query_version", ""), found)
        self.assertIn(("junk_text", "closed"), found)

    def test_missing_command_is_reported(self):
        self.ours["query_commands"]["commands_present"]["device_del"] = False
        found = [(s, p) for s, p, _ in undeclared(self.qemu, self.ours)]
        self.assertEqual(found, [("query_commands", "commands_present")])

    def test_declared_differences_are_accepted_and_only_those(self):
        # What our monitor does on purpose: no OOB, CPU unplug completing at once.
        self.ours["greeting"]["received"][0]["QMP"]["capabilities"] = []
        deleted = {"timestamp": {"seconds": 1, "microseconds": 2}, "event": "DEVICE_DELETED",
                   "data": {"device": "cpu1", "path": "/machine/peripheral/cpu1"}}
        self.ours["device_del_by_id"]["received"].append(deleted)
        del self.ours["qemu_switch_to_modern_cpu_hotplug"]
        self.assertEqual(undeclared(self.qemu, self.ours), [])
        self.assertEqual(len(declared(self.qemu, self.ours)), 3)
        # The same extra event on a step where nothing is declared is a difference.
        self.ours["query_status"]["received"].append(deleted)
        found = [(s, p) for s, p, _ in undeclared(self.qemu, self.ours)]
        self.assertEqual(found, [("query_status", "received")])

    def test_every_declaration_says_why(self):
        for entry in shape.load_declared(DECLARED):
            self.assertTrue(entry["why"].strip(), entry)

    def test_fixture_raw_texts_decode_to_the_received_values(self):
        for step, record in self.qemu.items():
            for raw, value in zip(record.get("raw", []), record["received"]):
                if not raw.startswith("<abbreviated"):
                    self.assertTrue(raw.endswith("\r\n"), (step, raw))
                    self.assertEqual(json.loads(raw), value, step)


if __name__ == "__main__":
    unittest.main()
