#!/usr/bin/env bash
# Deep pipelines with every wave in flight, on the bundled 8-layer KJV model: 8
# requests (greedy and seeded sampling, answers of different lengths) with 6 slots
# through `generate` at pp 4 and pp 8 (4 and 6 waves of uneven size, slots taking new
# requests as answers finish) and at dp 2 x pp 4 give the 1-rank answers token for
# token; then the single prompt's logits (--logits-out, a step alone in the
# pipeline, cut into micro-batches) at pp 8 within 1e-5 of max |logit| of 1 rank
# (read with h5dump).
# Needs MPILLM_BIN, MPILLM_SOURCE_DIR, MPIEXEC, MPIEXEC_FLAGS (set by the test runner).
set -euo pipefail
src=${MPILLM_SOURCE_DIR:?} bin=${MPILLM_BIN:?}
model=$src/models/kjv/model.h5
read -r -a mpiflags <<<"${MPIEXEC_FLAGS:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$work/req.jsonl" <<'JSON'
{"id": "a", "ids": [12, 400, 77, 1500, 9], "max_tokens": 12}
{"id": "b", "ids": [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22], "max_tokens": 5, "temperature": 0.8, "top_k": 40, "seed": 4}
{"id": "c", "ids": [300], "max_tokens": 16, "temperature": 1.1, "top_p": 0.9, "seed": 9}
{"id": "d", "ids": [42, 43], "max_tokens": 3}
{"id": "e", "ids": [1000, 2000, 3000, 4000], "max_tokens": 9, "temperature": 0.7, "min_p": 0.05, "repeat_penalty": 1.2, "seed": 2}
{"id": "f", "ids": [77, 78, 79, 80, 81, 82, 83], "max_tokens": 14}
{"id": "g", "ids": [2500, 17], "max_tokens": 7, "temperature": 0.9, "seed": 13}
{"id": "h", "ids": [8, 88, 888], "max_tokens": 11, "temperature": 1.0, "seed": 21}
JSON
ids() { sed 's/.*"generated_ids":\(\[[^]]*\]\).*/\1/' "$1"; }
run() { # name ranks [layout options]
  local name=$1 n=$2
  shift 2
  "${MPIEXEC:?}" -n "$n" "${mpiflags[@]}" "$bin" generate -m "$model" --input "$work/req.jsonl" --ignore-eos \
    --batch 6 --threads 1 -o "$work/$name.jsonl" "$@" 2>"$work/$name.err" ||
    fail "generate $name exited non-zero: $(tail -n 3 "$work/$name.err")"
  [ "$(wc -l <"$work/$name.jsonl")" = 8 ] || fail "$name: $(wc -l <"$work/$name.jsonl") answers, not 8"
}
run one 1
for layout in "pp4:4:--pp 4" "pp8:8:--pp 8" "dp2pp4:8:--dp 2 --pp 4"; do
  IFS=: read -r name n opts <<<"$layout"
  read -r -a args <<<"$opts"
  run "$name" "$n" "${args[@]}"
  cmp -s <(ids "$work/one.jsonl") <(ids "$work/$name.jsonl") ||
    fail "$name: tokens differ from 1 rank: $(diff <(ids "$work/one.jsonl") <(ids "$work/$name.jsonl") | head -n 4)"
  echo "$name: the 1-rank tokens for all 8 requests"
done

prompt=12,400,77,1500,9,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20
"$bin" generate -m "$model" --prompt-ids "$prompt" -n 0 --threads 1 --logits-out "$work/one.h5" >/dev/null 2>"$work/lo1.err" ||
  fail "logits on 1 rank: $(tail -n 2 "$work/lo1.err")"
"${MPIEXEC:?}" -n 8 "${mpiflags[@]}" "$bin" generate -m "$model" --prompt-ids "$prompt" -n 0 --threads 1 --pp 8 \
  --logits-out "$work/pp8.h5" >/dev/null 2>"$work/lo8.err" || fail "logits at pp 8: $(tail -n 2 "$work/lo8.err")"
# the logits as text at full precision (h5dump, hdf5-tools), one value per line
values() { h5dump -m '%.9g' -d logits -y -w 0 -o "$2" "$1" >/dev/null && tr ',' '\n' <"$2" | tr -d ' ' | grep . >"$2.v"; }
values "$work/one.h5" "$work/one.txt" && values "$work/pp8.h5" "$work/pp8.txt" || fail "h5dump of the logits"
paste "$work/one.txt.v" "$work/pp8.txt.v" | awk '
  { n++; d = $1 - $2; if (d < 0) d = -d; if (d > dmax) dmax = d; a = $1 < 0 ? -$1 : $1; if (a > amax) amax = a }
  END { printf "pp8 prompt logits: %d values, max diff %.3g, max |logit| %.3g\n", n, dmax, amax
        exit !(n == 21 * 4096 && amax > 0 && dmax <= 1e-5 * amax) }' ||
  fail "prompt logits at pp 8 differ from 1 rank (or not 21 x 4096 values)"
echo "PASS"
