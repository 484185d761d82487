#!/usr/bin/env bash
# The bundled KJV model's perplexity on the first two held-out chapters
# (models/kjv/heldout-ci.txt, 1432 tokens), by `mpillm eval` at 1 rank and on 4-rank
# layouts, against the figure PyTorch measured on the same bf16 weights
# (models/kjv/ci-reference.json, scripts/kjv/eval_hf.py): within 0.5% of PyTorch and the
# same token count, and every layout within 1e-5 (relative) of the 1-rank answer.
# Usage: test_kjv_eval.sh CTX
# Needs MPILLM_BIN, MPILLM_SOURCE_DIR, MPIEXEC, MPIEXEC_FLAGS (set by the test runner).
set -euo pipefail
ctx=${1:?usage: test_kjv_eval.sh CTX}
src=${MPILLM_SOURCE_DIR:?} bin=${MPILLM_BIN:?}
model=$src/models/kjv/model.h5 text=$src/models/kjv/heldout-ci.txt
read -r -a mpiflags <<<"${MPIEXEC_FLAGS:-}"

ref=$(python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))["perplexity"][sys.argv[2]]
print(r["ppl"], r["predicted"])' "$src/models/kjv/ci-reference.json" "$ctx")
read -r ref_ppl ref_predicted <<<"$ref"

# eval --json prints one line: {"perplexity": ..., "predicted": ..., ...}
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }
run() { # ranks, layout options...
  local n=$1; shift
  local out
  if [ "$n" = 1 ]; then
    out=$("$bin" eval -m "$model" --text "$text" --ctx "$ctx" --json --threads 1 "$@") ||
      { echo "FAIL: eval on 1 rank exited non-zero" >&2; return 1; }
  else
    out=$("${MPIEXEC:?}" -n "$n" "${mpiflags[@]}" "$bin" eval -m "$model" --text "$text" \
          --ctx "$ctx" --json --threads 1 "$@") ||
      { echo "FAIL: eval on $n ranks $* exited non-zero" >&2; return 1; }
  fi
  local ppl predicted
  ppl=$(field perplexity <<<"$out")
  predicted=$(field predicted <<<"$out")
  echo "ranks $n ${*:-(one rank)}: perplexity $ppl over $predicted predicted tokens (PyTorch: $ref_ppl over $ref_predicted)" >&2
  [ "$predicted" = "$ref_predicted" ] || { echo "FAIL: $predicted predicted tokens, PyTorch $ref_predicted" >&2; return 1; }
  echo "$ppl"
}
within() { # a b rel_tol
  python3 -c 'import sys; a, b, t = map(float, sys.argv[1:]); sys.exit(0 if abs(a / b - 1) <= t else 1)' "$@"
}

one=$(run 1) || exit 1
within "$one" "$ref_ppl" 0.005 || { echo "FAIL: 1 rank $one is not within 0.5% of PyTorch's $ref_ppl" >&2; exit 1; }
fail=0
for layout in "--tp 4" "--pp 2 --tp 2" "--dp 2 --pp 2"; do
  # shellcheck disable=SC2086
  p=$(run 4 $layout) || { fail=1; continue; }
  within "$p" "$one" 1e-5 || { echo "FAIL: $layout gives $p, 1 rank $one" >&2; fail=1; }
  within "$p" "$ref_ppl" 0.005 || { echo "FAIL: $layout $p is not within 0.5% of PyTorch's $ref_ppl" >&2; fail=1; }
done
exit $fail
