#!/usr/bin/env bash
# Smoke test of the README's main command: scripts/demo.sh (without its set-up step, on
# the binary under test) prints the prompt, a continuation of words and the timings line.
set -euo pipefail
out=$(MPILLM_BIN=${MPILLM_BIN:?} MPIEXEC=${MPIEXEC:?} "${MPILLM_SOURCE_DIR:?}/scripts/demo.sh" --no-setup -n 12 2>&1) || {
  echo "$out"; echo "FAIL: demo.sh exited non-zero" >&2; exit 1; }
echo "$out"
grep -q '^In the beginning' <<<"$out" || { echo "FAIL: no 'In the beginning' line" >&2; exit 1; }
# the continuation: at least 4 more words of letters after the prompt
grep -Eq '^In the beginning([^A-Za-z]+[A-Za-z]+){4}' <<<"$out" || { echo "FAIL: no words after the prompt" >&2; exit 1; }
grep -Eq 'generated [0-9]+ tokens, [0-9.]+ tok/s' <<<"$out" || { echo "FAIL: no timings line" >&2; exit 1; }
