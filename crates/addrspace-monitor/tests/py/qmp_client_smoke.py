"""Drives a QMP server with QEMU's own Python client (qemu.qmp): negotiation, commands,
errors, an event, HMP through human-monitor-command. Exit status 0 when all is as expected.
Usage: qmp_client_smoke.py SOCKET_PATH CPU_TYPE"""

import asyncio
import sys

from qemu.qmp import ExecuteError, QMPClient


async def session(path, cpu_type):
    qmp = QMPClient("smoke")
    await qmp.connect(path)
    status = await qmp.execute("query-status")
    assert status == {"status": "running", "running": True}, status
    version = await qmp.execute("query-version")
    assert version["qemu"] == {"major": 10, "minor": 0, "micro": 2}, version
    await qmp.execute("device_add", {"driver": cpu_type, "socket-id": 1, "id": "cpu1"})
    with qmp.listener("DEVICE_DELETED") as listener:
        assert await qmp.execute("device_del", {"id": "cpu1"}) == {}
        event = await listener.get()
        assert event["data"]["device"] == "cpu1", event
    try:
        await qmp.execute("no-such-command")
        raise AssertionError("no error for an unknown command")
    except ExecuteError as err:
        assert err.error.error.class_ == "CommandNotFound", err.error
    text = await qmp.execute("human-monitor-command", {"command-line": "info status"})
    assert text == "VM status: running\r\n", repr(text)
    await qmp.disconnect()


asyncio.run(asyncio.wait_for(session(sys.argv[1], sys.argv[2]), timeout=60))
print("qemu.qmp session ok")
