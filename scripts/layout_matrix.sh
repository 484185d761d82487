#!/usr/bin/env bash
# The wider layout matrix (issue 4): every dp x pp x tp of 1..MAX_RANKS ranks (8 by
# default) on the three fixtures and on a random 8-layer LLaMA (deep pipelines),
# from the one model file and from shard sets cut by `mpillm shard`, compared with
# the one-rank run: generated tokens identical (greedy and seeded sampling, 6 requests
# with 4 in flight: up to 4 pipeline waves, slots taking new requests), perplexity
# within 1e-5 relative, prompt logits within 1e-5
# of max|logit| (when python3 has h5py). Layouts the model cannot take (more stages
# than layers, more tensor ranks than heads) must fail with one message and a
# non-zero exit; they count as passed when they do. Prints "N passed, M failed".
#   scripts/layout_matrix.sh [BUILD_DIR]      (MAX_RANKS=4 for a quicker run,
#   MODELS="deep llama_gqa" for some of llama_gqa qwen2_tied gpt2 deep)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bin=${MPILLM_BIN:-$build/mpillm}
max_ranks=${MAX_RANKS:-8}
[ -x "$bin" ] || { echo "layout_matrix: no binary at $bin (build first)"; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none MPILLM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
failures=()
have_h5py=0
python3 -c 'import h5py, numpy' 2>/dev/null && have_h5py=1

# models: the fixtures (2 layers; 6/4/4 heads with 2/2/4 KV heads) and a deep one
for m in llama_gqa qwen2_tied gpt2; do
  "$bin" convert "$root/tests/fixtures/$m/hf" -o "$work/$m.h5" >/dev/null 2>&1 || { echo "convert $m failed"; exit 2; }
done
python3 "$root/scripts/make_bench_model.py" "$work/deep_hf" --layers 8 --hidden 64 --heads 4 --kv-heads 2 \
  --intermediate 96 --vocab 300 --ctx 128 2>/dev/null || { echo "make_bench_model failed"; exit 2; }
"$bin" convert "$work/deep_hf" -o "$work/deep.h5" --dtype f32 >/dev/null 2>&1 || { echo "convert deep failed"; exit 2; }
declare -A layers=([llama_gqa]=2 [qwen2_tied]=2 [gpt2]=2 [deep]=8)
declare -A heads=([llama_gqa]=6 [qwen2_tied]=4 [gpt2]=4 [deep]=4)

cat >"$work/req.jsonl" <<'EOF'
{"id": "greedy", "ids": [1, 17, 23, 99, 150, 7], "max_tokens": 8}
{"id": "topk", "ids": [1, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69], "max_tokens": 6, "temperature": 0.9, "top_k": 40, "top_p": 0.95, "seed": 3}
{"id": "minp", "ids": [1, 200, 201], "max_tokens": 10, "temperature": 1.2, "min_p": 0.05, "repeat_penalty": 1.3, "seed": 8}
{"id": "short", "ids": [5], "max_tokens": 4, "temperature": 0.7, "seed": 1}
{"id": "long", "ids": [2, 4, 8, 16, 32, 64, 128, 256, 3, 9, 27, 81, 243], "max_tokens": 9}
{"id": "pair", "ids": [11, 12], "max_tokens": 5, "temperature": 1.0, "top_k": 20, "seed": 6}
EOF
awk 'BEGIN { srand(7); for (i = 0; i < 300; i++) printf "%d%s", 3 + int(rand() * 290), (i < 299 ? "," : "\n") }' >"$work/text_ids"
prompt=$(cut -d, -f1-20 "$work/text_ids")

# one run of a layout: generate (answers + prompt logits) and eval, into DIR
run_case() { # MODEL_PATH N DIR layout...
  local path=$1 n=$2 dir=$3
  shift 3
  mkdir -p "$dir"
  timeout 300 mpiexec -n "$n" --oversubscribe --bind-to none "$bin" generate -m "$path" --input "$work/req.jsonl" \
    --ignore-eos --batch 4 -o "$dir/answers.jsonl" "$@" >/dev/null 2>"$dir/err" || return 1
  timeout 300 mpiexec -n "$n" --oversubscribe --bind-to none "$bin" generate -m "$path" --prompt-ids "$prompt" -n 0 \
    --logits-out "$dir/logits.h5" --json "$@" >/dev/null 2>>"$dir/err" || return 1
  # eval reads text: the deep model has no tokenizer, so it is measured on the fixtures only
  if [ "$do_eval" = 1 ]; then
    timeout 300 mpiexec -n "$n" --oversubscribe --bind-to none "$bin" eval -m "$path" --text "$work/text.txt" --ctx 24 \
      --json "$@" >"$dir/eval.json" 2>>"$dir/err" || return 1
  fi
  return 0
}

compare() { # REF_DIR DIR -> 0 when equal
  local ref=$1 dir=$2
  cmp -s <(sed 's/.*"generated_ids":\(\[[^]]*\]\).*/\1/' "$ref/answers.jsonl") \
         <(sed 's/.*"generated_ids":\(\[[^]]*\]\).*/\1/' "$dir/answers.jsonl") || { echo "tokens differ"; return 1; }
  if [ -f "$ref/eval.json" ]; then
    local a b
    a=$(sed 's/.*"perplexity":\([0-9.e+]*\).*/\1/' "$ref/eval.json")
    b=$(sed 's/.*"perplexity":\([0-9.e+]*\).*/\1/' "$dir/eval.json")
    awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * a) }' || { echo "perplexity $b vs $a"; return 1; }
  fi
  if [ "$have_h5py" = 1 ]; then
    python3 - "$ref/logits.h5" "$dir/logits.h5" <<'EOF' || return 1
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1])["logits"][:]; b = h5py.File(sys.argv[2])["logits"][:]
err = np.abs(a - b).max() / np.abs(a).max()
if a.shape != b.shape or not err <= 1e-5:
    print(f"logits differ: {err:.2e} of max|logit|"); sys.exit(1)
EOF
  fi
  return 0
}

record() { # OK? NAME DETAIL
  if [ "$1" = 0 ]; then passed=$((passed + 1)); printf '  ok    %s\n' "$2"
  else failed=$((failed + 1)); failures+=("$2: $3"); printf '  FAIL  %s: %s\n' "$2" "$3"; fi
}

for model in ${MODELS:-llama_gqa qwen2_tied gpt2 deep}; do
  echo "== $model (${layers[$model]} layers, ${heads[$model]} heads)"
  # text for eval: random ids decoded by this model's tokenizer
  do_eval=0
  if [ "$model" != deep ]; then
    do_eval=1
    "$bin" tokenize -m "$work/$model.h5" --no-special --decode "[$(cat "$work/text_ids")]" >"$work/text.txt" 2>/dev/null \
      || printf 'In the beginning God created the heaven and the earth. %.0s' $(seq 30) >"$work/text.txt"
  fi
  ref=$work/$model/ref
  run_case "$work/$model.h5" 1 "$ref" || { record 1 "$model 1 rank" "$(tail -n 1 "$ref/err")"; continue; }
  for n in $(seq 2 "$max_ranks"); do
    for pp in $(seq 1 "$n"); do
      for tp in $(seq 1 "$n"); do
        [ $((n % (pp * tp))) = 0 ] || continue
        dp=$((n / (pp * tp)))
        name="$model n=$n dp$dp pp$pp tp$tp"
        dir=$work/$model/n$n-d$dp-p$pp-t$tp
        expect_refusal=0
        [ "$pp" -gt "${layers[$model]}" ] && expect_refusal=1
        if run_case "$work/$model.h5" "$n" "$dir" --dp "$dp" --pp "$pp" --tp "$tp"; then
          if [ "$expect_refusal" = 1 ]; then record 1 "$name" "ran although pp > layers"; continue; fi
          why=$(compare "$ref" "$dir"); record $? "$name" "$why"
        else
          msg=$(grep -c 'mpillm: error' "$dir/err")
          if [ "$expect_refusal" = 1 ] && [ "$msg" = 1 ]; then record 0 "$name (refused: $(grep -o 'needs at least.*' "$dir/err" | head -c 60))" ""
          elif [ "$tp" -gt "${heads[$model]}" ] && [ "$msg" = 1 ]; then record 0 "$name (refused: tp > heads)" ""
          else record 1 "$name" "$(grep 'mpillm: error' "$dir/err" | head -n 1 | cut -c1-200)$(tail -n 2 "$dir/err" | cut -c1-200)"; fi
        fi
        # the same layout from a shard set cut for it (once per pp x tp)
        if [ "$expect_refusal" = 0 ] && [ "$dp" = 1 ] && [ $((pp * tp)) -gt 1 ] && [ "$tp" -le "${heads[$model]}" ]; then
          shards=$work/$model/shards-p$pp-t$tp
          if "$bin" shard "$work/$model.h5" --tp "$tp" --pp "$pp" -o "$shards" >/dev/null 2>"$work/shard.err"; then
            sdir=$dir-shards
            if run_case "$shards" "$n" "$sdir" --pp "$pp" --tp "$tp"; then
              why=$(compare "$ref" "$sdir"); record $? "$name from shards" "$why"
            else record 1 "$name from shards" "$(tail -n 2 "$sdir/err" | cut -c1-300)"; fi
          else record 1 "$name shard" "$(head -n 1 "$work/shard.err")"; fi
        fi
      done
    done
  done
done
# a shard set used with the wrong layout: one clear error
"$bin" shard "$work/llama_gqa.h5" --tp 2 -o "$work/sh2" >/dev/null 2>&1
if timeout 120 mpiexec -n 4 --oversubscribe --bind-to none "$bin" generate -m "$work/sh2" -p hi --tp 4 >/dev/null 2>"$work/err"; then
  record 1 "shard set for tp 2 used at tp 4" "ran"
else
  n_msg=$(grep -c 'mpillm: error' "$work/err"); [ "$n_msg" = 1 ]; record $? "shard set for tp 2 used at tp 4 (refused)" "$(cat "$work/err" | head -c 300)"
fi
echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
