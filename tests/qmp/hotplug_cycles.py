#!/usr/bin/env python3
"""QEMU's own Python QMP client (qemu.qmp, from PyPI) drives a running addrspace machine.

It connects and negotiates, checks the guest is running, then hot-unplugs and re-plugs a CPU
CYCLES times while the guest runs, waiting for each DEVICE_DELETED, and checks that the
live-object counters (x-query-live-objects) after the last cycle equal those after the first
(the first unplug parks the vCPU's fd, which KVM cannot destroy). Finally it writes
`info mtree -f` (through human-monitor-command) to OUT_FILE and sends `quit`.

Usage: hotplug_cycles.py SOCKET CYCLES OUT_FILE
"""

import asyncio
import sys

from qemu.qmp import EventListener, QMPClient

CPU = {"driver": "qemu64-x86_64-cpu", "socket-id": 0, "core-id": 1, "thread-id": 0, "id": "cpu1"}
STABLE = ["regions", "address-spaces", "flatviews", "listeners", "memslots", "cpus",
          "vcpu-threads", "parked-vcpus", "open-fds", "threads"]


async def cycle(qmp: QMPClient, deleted: EventListener) -> None:
    await qmp.execute("device_add", CPU)
    await qmp.execute("device_del", {"id": "cpu1"})
    event = await asyncio.wait_for(deleted.get(), timeout=30)
    data = event["data"]
    assert data == {"device": "cpu1", "path": "/machine/peripheral/cpu1"}, data


async def main(sock: str, cycles: int, out_file: str) -> int:
    qmp = QMPClient("addrspace-hotplug-test")
    await qmp.connect(sock)
    status = await qmp.execute("query-status")
    assert status == {"status": "running", "running": True}, status
    version = await qmp.execute("query-version")
    print(f"connected: QEMU {version['qemu']} semantics, package {version['package']!r}")

    deleted = EventListener("DEVICE_DELETED")
    with qmp.listen(deleted):
        await cycle(qmp, deleted)
        before = await qmp.execute("x-query-live-objects")
        for k in range(1, cycles):
            await cycle(qmp, deleted)
            if k % 20 == 0:
                print(f"cycle {k}/{cycles}", flush=True)
        after = await qmp.execute("x-query-live-objects")

    grew = [f"{k}: {before[k]} -> {after[k]}" for k in STABLE if after[k] != before[k]]
    print("counters after cycle 1:", {k: before[k] for k in STABLE})
    print(f"counters after cycle {cycles}:", {k: after[k] for k in STABLE})
    beats = after["guest-heartbeats"] - before["guest-heartbeats"]
    print(f"guest heartbeats during the cycles: {beats}")

    text = await qmp.execute("human-monitor-command", {"command-line": "info mtree -f"})
    # The monitor ends lines with CR LF, as QEMU's does.
    with open(out_file, "w", encoding="utf-8", newline="") as f:
        f.write(text.replace("\r\n", "\n"))

    await qmp.execute("quit")
    try:
        await qmp.disconnect()
    except EOFError:
        # The server hangs up after `quit`, as QEMU does; qemu.qmp raises EOFError from
        # disconnect() when its reader sees the hang-up first (client_bytes.py does the same).
        pass
    if grew:
        print("GREW:", "; ".join(grew))
        return 1
    if beats <= 0:
        print("the guest did not run during the cycles")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
