#!/usr/bin/env python3
"""QEMU's side of the qemu_machine bench, measured in the same sitting (stdlib only).

Starts the machine of shared/spec/qemu-commit-cost.md (q35, TCG, -S, pci-testdev `tgt` at
00:02.0, empty pci-bridge `hpbr`, N x virtio-rng-pci behind pci-bridges, 31 per bridge) and
times over QMP -> HMP port I/O on 0xcf8/0xcfc, as the spec does:

  cfg-noop    tgt's BAR0 rewritten with the value it holds (decode off): no commit
  mem-toggle  tgt's command register memory bit set/cleared: BAR0 mapped/unmapped, 1 commit
  bar-move    BAR0 moved 0xfe000000 <-> 0xfd000000 with decode on: 2 commits

and reports, per phase, the median QMP round trip and QEMU's CPU per op (schedstat of all its
threads, sampled after QEMU went idle), then the deltas against cfg-noop. Also the startup time (Popen to the first QMP
reply), the peak RSS (VmHWM) and one device_add into hpbr.

Usage: python3 qemu_side.py [N ...]   (default: 0 100; OPS=200 ops per phase)
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

OPS = int(os.environ.get("OPS", "200"))
TGT = 0x80000000 | 2 << 11


def command_line(n, sock):
    args = ["qemu-system-x86_64", "-M", "q35", "-m", "1G", "-accel", "tcg", "-S", "-nodefaults",
            "-display", "none",
            "-device", "pci-testdev,bus=pcie.0,addr=0x2,id=tgt",
            "-device", "pci-bridge,bus=pcie.0,addr=0x3,chassis_nr=1,id=hpbr"]
    for b in range((n + 30) // 31):
        args += ["-device", f"pci-bridge,bus=pcie.0,addr={0x4 + b:#x},chassis_nr={2 + b},id=br{b}"]
    for i in range(n):
        args += ["-device", f"virtio-rng-pci,bus=br{i // 31},addr={i % 31 + 1:#x},id=dev{i}"]
    return args + ["-qmp", f"unix:{sock},server=on,wait=off"]


class Qemu:
    def __init__(self, n):
        sock = os.path.join(tempfile.mkdtemp(), "qmp.sock")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(command_line(n, sock))
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                break
            except OSError:
                time.sleep(0.001)
        self.f = s.makefile("rwb", buffering=0)
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")
        self.cmd("query-status")
        self.startup = time.monotonic() - t0

    def cmd(self, name, **args):
        msg = {"execute": name, "arguments": args} if args else {"execute": name}
        self.f.write(json.dumps(msg).encode() + b"\n")
        while True:
            r = json.loads(self.f.readline())
            if "return" in r or "error" in r:
                return r

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})

    def cpu_ns(self):
        total = 0
        for t in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        return total

    def vm_hwm_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def wait_idle(self):
        """Until QEMU is idle (< 20 µs of CPU in 50 ms): its RCU thread frees startup garbage."""
        while True:
            c = self.cpu_ns()
            time.sleep(0.05)
            if self.cpu_ns() - c < 20_000:
                return

    def phase(self, lines):
        """(median round trip µs, mean QEMU CPU µs per op) over OPS ops cycling `lines`."""
        for i in range(20):
            self.hmp(lines[i % len(lines)])
        rtt = []
        cpu0 = self.cpu_ns()
        for i in range(OPS):
            t = time.perf_counter()
            self.hmp(lines[i % len(lines)])
            rtt.append((time.perf_counter() - t) * 1e6)
        return statistics.median(rtt), (self.cpu_ns() - cpu0) / OPS / 1e3

    def quit(self):
        self.cmd("quit")
        self.proc.wait()


def measure(n):
    q = Qemu(n)
    hwm = q.vm_hwm_mib()
    q.wait_idle()
    q.hmp(f"o /w 0xcf8 {TGT | 0x10:#x}")
    q.hmp("o /w 0xcfc 0xfe000000")
    noop = q.phase(["o /w 0xcfc 0xfe000000"])
    q.hmp(f"o /w 0xcf8 {TGT | 0x04:#x}")
    toggle = q.phase(["o /h 0xcfc 0x2", "o /h 0xcfc 0x0"])
    q.hmp("o /h 0xcfc 0x2")
    q.hmp(f"o /w 0xcf8 {TGT | 0x10:#x}")
    move = q.phase(["o /w 0xcfc 0xfd000000", "o /w 0xcfc 0xfe000000"])
    t = time.perf_counter()
    q.cmd("device_add", driver="virtio-rng-pci", bus="hpbr", addr="0x1", id="hp1")
    add_ms = (time.perf_counter() - t) * 1e3
    q.quit()
    print(f"| {n} | {q.startup * 1e3:.0f} | {hwm:.0f} | {noop[0]:.0f} / {noop[1]:.0f} "
          f"| {toggle[0] - noop[0]:.0f} / {toggle[1] - noop[1]:.0f} "
          f"| {move[0] - noop[0]:.0f} / {move[1] - noop[1]:.0f} | {add_ms:.1f} |", flush=True)


def main():
    ns = [int(a) for a in sys.argv[1:]] or [0, 100]
    print(f"QEMU: {subprocess.run(['qemu-system-x86_64', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}; {OPS} ops per phase")
    print("| N | startup ms | peak RSS MiB | cfg-noop RTT / CPU µs | 1 commit Δwall / ΔCPU µs | BAR move Δwall / ΔCPU µs | device_add ms |")
    print("|---|---|---|---|---|---|---|")
    for n in ns:
        measure(n)


if __name__ == "__main__":
    main()
