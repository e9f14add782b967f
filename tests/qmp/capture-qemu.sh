#!/bin/sh
# Re-captures the QEMU reference transcripts in tests/fixtures/qmp/ (see its README.md).
# Needs qemu-system-x86_64 10.0.2 (Debian bookworm-backports) on PATH. Run from the repo root.
set -eu
out=tests/fixtures/qmp
walk=tests/qmp/qmp_walk.py
dir=$(mktemp -d)
pid=
# On any failure, stop the QEMU this script started and remove its sockets.
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT

# $1 = transcript name, $2 = -smp value, $3 = walk ("client-bytes": tests/qmp/client_bytes.py),
# rest = extra QEMU arguments. Every walk ends with `quit`, so QEMU exits by itself.
capture() {
    name=$1 smp=$2 which=$3
    shift 3
    qemu-system-x86_64 -M q35 -accel tcg -smp "$smp" -m 64 -display none -nodefaults "$@" \
        -qmp "unix:$dir/q.sock,server=on,wait=off" -qmp "unix:$dir/q2.sock,server=on,wait=off" &
    pid=$!
    while [ ! -S "$dir/q2.sock" ]; do sleep 0.1; done
    if [ "$which" = client-bytes ]; then
        python3 tests/qmp/client_bytes.py "$dir/q.sock" > "$out/$name"
    else
        python3 "$walk" --target qemu --walk "$which" "$dir/q.sock" --second "$dir/q2.sock" \
            ${hmp:+--hmp-dir "$hmp"} > "$out/$name"
    fi
    wait "$pid"
    pid=
    rm -f "$dir/q.sock" "$dir/q2.sock"
}

hmp=$out capture qemu-10.0.2-q35.jsonl 1,maxcpus=4 main
hmp= capture qemu-10.0.2-q35-sockets2-cores2.jsonl 1,maxcpus=4,sockets=2,cores=2 main
hmp= capture qemu-10.0.2-q35-device-deleted.jsonl 1,maxcpus=4 device-deleted \
    -device virtio-serial-pci,id=vs0
hmp= capture qemu.qmp-0.0.6-session.jsonl 1,maxcpus=4 client-bytes
