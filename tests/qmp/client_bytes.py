#!/usr/bin/env python3
"""Records the exact bytes QEMU's own Python client (qemu.qmp) exchanges with a QMP server.

Why: issue 14 requires `qemu.qmp` and `qmp-shell` to drive our monitor with no special casing,
so we need to know what that client actually sends (it writes commands with no newline, uses
`__qmp#NNNNN` ids, asks for OOB when the greeting offers it). This script puts a logging proxy
between a `qemu.qmp.QMPClient` and the server at SOCKET, runs a short session (query-status, an
HMP command, stop, an unknown command, cont, quit), and prints one JSON line per chunk read:
`{"from": "client"|"server", "bytes": TEXT}`, plus `{"from": "note", ...}` for what the client
raised.

Usage: python3 tests/qmp/client_bytes.py SOCKET > session.jsonl   (needs `pip install qemu.qmp`)
"""

import asyncio
import json
import os
import sys
import tempfile

from qemu.qmp import QMPClient


async def pipe(reader, writer, tag, log):
    while True:
        data = await reader.read(65536)
        if not data:
            writer.close()
            return
        log.append({"from": tag, "bytes": data.decode(errors="backslashreplace")})
        writer.write(data)
        await writer.drain()


async def session(target):
    log = []

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_unix_connection(target)
        await asyncio.gather(pipe(client_reader, server_writer, "client", log),
                             pipe(server_reader, client_writer, "server", log))

    with tempfile.TemporaryDirectory() as tmp:
        proxy = os.path.join(tmp, "proxy.sock")
        server = await asyncio.start_unix_server(handle, proxy)
        client = QMPClient("client-bytes")
        await client.connect(proxy)
        await client.execute("query-status")
        await client.execute("human-monitor-command", {"command-line": "info status"})
        await client.execute("stop")
        try:
            await client.execute("nosuch")
        except Exception as e:  # what the client turns an error reply into
            log.append({"from": "note", "bytes": f"qemu.qmp raised {type(e).__name__}: {e}"})
        await client.execute("cont")
        await client.execute("quit")
        await asyncio.sleep(0.3)
        try:
            await client.disconnect()
        except EOFError:  # the server hung up after quit, as QEMU does
            log.append({"from": "note", "bytes": "qemu.qmp disconnect() raised EOFError"})
        await asyncio.sleep(0.2)
        server.close()
    return log


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for entry in asyncio.run(session(sys.argv[1])):
        print(json.dumps(entry))


if __name__ == "__main__":
    main()
