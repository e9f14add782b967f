#!/usr/bin/env python3
"""QMP round-trip latency of a server, measured over its Unix socket with raw JSON.

Usage: latency.py SOCKET [--n N] [--cycles N]

Reports the median and 99th percentile of N `query-status` round trips, and, with --cycles,
of CPU plug + unplug cycles (`device_add` then `device_del` until DEVICE_DELETED; only for a
server whose CPU unplug completes without a guest, i.e. addrspace). Run it against
`addrspace run ... --qmp` and against `qemu-system-x86_64 -M q35 ... -qmp` on the same machine
to compare the two in one sitting.
"""

import argparse
import json
import socket
import statistics
import time


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.buf = b""
        self.next()  # greeting
        self.call({"execute": "qmp_capabilities"})

    def next(self):
        while b"\n" not in self.buf:
            data = self.s.recv(1 << 16)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, msg):
        self.s.sendall(json.dumps(msg).encode())
        while True:
            v = self.next()
            if "event" not in v:
                return v

    def until_event(self, name):
        while True:
            v = self.next()
            if v.get("event") == name:
                return v


def stats(label, samples):
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{label}: median {statistics.median(samples) * 1e6:.0f} µs, "
          f"p99 {p99 * 1e6:.0f} µs over {len(samples)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("socket")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--cycles", type=int, default=0)
    a = p.parse_args()
    c = Conn(a.socket)
    rt = []
    for _ in range(a.n):
        t = time.perf_counter()
        c.call({"execute": "query-status"})
        rt.append(time.perf_counter() - t)
    stats("query-status round trip", rt)
    cyc = []
    for _ in range(a.cycles):
        t = time.perf_counter()
        c.call({"execute": "device_add", "arguments": {
            "driver": "qemu64-x86_64-cpu", "socket-id": 0, "core-id": 1, "thread-id": 0,
            "id": "lat1"}})
        c.call({"execute": "device_del", "arguments": {"id": "lat1"}})
        c.until_event("DEVICE_DELETED")
        cyc.append(time.perf_counter() - t)
    if cyc:
        stats("device_add + device_del + DEVICE_DELETED", cyc)


if __name__ == "__main__":
    main()
