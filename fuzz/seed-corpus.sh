#!/usr/bin/env bash
# Seeds the corpora of the text-reading fuzz targets from the repository's own inputs: every
# `info mtree` capture of tests/fixtures/qemu for `import_dump`, every board of boards/ for
# `board_load`, and the ARM SSE-200 shapes of seeds/ (aliases into their own containers) —
# each prefixed with a zero byte, which selects the targets' text mode.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/import_dump corpus/board_load
for f in ../tests/fixtures/qemu/*/mtree*.txt; do
  n=$(basename "$(dirname "$f")")-$(basename "$f")
  { printf '\0'; cat "$f"; } > "corpus/import_dump/seed-$n"
done
{ printf '\0'; cat seeds/sse200-mtree-D.txt; } > corpus/import_dump/seed-sse200-mtree-D.txt
for f in ../boards/*.toml seeds/sse200.toml; do
  { printf '\0'; cat "$f"; } > "corpus/board_load/seed-$(basename "$f")"
done
