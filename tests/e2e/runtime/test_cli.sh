#!/usr/bin/env bash
# The runtime's commands end to end on the converted LLaMA fixture.
set -u
bin=${MPILLM_BIN:?} src=${MPILLM_SOURCE_DIR:?} mpiexec=${MPIEXEC:-mpiexec}
read -r -a flags <<<"${MPIEXEC_FLAGS:-}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mpi() { local n=$1; shift; "$mpiexec" -n "$n" "${flags[@]}" "$bin" "$@"; }
mpi2=("$mpiexec" -n 2 "${flags[@]}" "$bin")
model=$work/llama.h5
"$bin" convert "$src/tests/fixtures/llama_gqa/hf" -o "$model" >/dev/null 2>&1 || fail "convert"

# one prompt: streamed text, then the timings line
"$bin" generate -m "$model" -p "In the beginning" -n 6 >"$work/out" 2>"$work/err" || fail "generate: $(cat "$work/err")"
grep -q "^\[prompt [0-9]* tokens, .* tok/s | generated 6 tokens, .* tok/s" "$work/out" || fail "no timings line: $(cat "$work/out")"

# requests in a file: answers in request order, the same tokens on dp 2 and pp 2
cat >"$work/req.jsonl" <<'JSONL'
{"id": "first", "prompt": "The quick brown fox", "max_tokens": 5}
{"id": "second", "ids": [1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52], "max_tokens": 7, "temperature": 0.8, "top_k": 20}
{"prompt": "Hello", "max_tokens": 9, "temperature": 1.1, "min_p": 0.05, "repeat_penalty": 1.2, "seed": 77}
JSONL
"$bin" generate -m "$model" --input "$work/req.jsonl" --seed 5 --ignore-eos -o "$work/a1.jsonl" 2>"$work/err" || fail "generate --input: $(cat "$work/err")"
[ "$(wc -l <"$work/a1.jsonl")" = 3 ] || fail "expected 3 answers: $(cat "$work/a1.jsonl")"
ids=$(sed 's/^{"id":"\([^"]*\)".*/\1/' "$work/a1.jsonl" | tr '\n' ' ')
[ "$ids" = "first second 2 " ] || fail "answers out of order: $ids"
gen() { sed 's/.*"generated_ids":\(\[[^]]*\]\).*/\1/' "$1"; }
for layout in "--dp 2"; do # every layout is the MPI test's job; this is the command line's
  # shellcheck disable=SC2086
  mpi 2 generate -m "$model" --input "$work/req.jsonl" --seed 5 --ignore-eos -o "$work/a2.jsonl" $layout 2>"$work/err" \
    || fail "generate $layout: $(cat "$work/err")"
  [ "$(gen "$work/a1.jsonl")" = "$(gen "$work/a2.jsonl")" ] || fail "$layout differs: $(gen "$work/a2.jsonl") vs $(gen "$work/a1.jsonl")"
done
grep -q '"generated_ids":\[[0-9,]*\]' "$work/a1.jsonl" || fail "no generated ids"
grep -q '"prompt_tok_per_s"' "$work/a1.jsonl" || fail "no timings in the answers"

# --json on stdout and --logits-out (an HDF5 file with /logits)
"$bin" generate -m "$model" --prompt-ids 1,5,6,7 -n 2 --json --logits-out "$work/l.h5" >"$work/out" 2>"$work/err" || fail "logits-out: $(cat "$work/err")"
grep -q '"prompt_ids":\[1,5,6,7\]' "$work/out" || fail "json: $(cat "$work/out")"
head -c 4 "$work/l.h5" | od -c | grep -q 'H   D   F' || fail "logits file is not HDF5"
if command -v h5ls >/dev/null; then h5ls "$work/l.h5" | grep -q "logits *Dataset {4, 403}" || fail "logits shape: $(h5ls "$work/l.h5")"; fi

# eval (its layouts are the MPI test's job)
printf 'The quick brown fox jumps over the lazy dog. %.0s' $(seq 40) >"$work/text.txt"
"$bin" eval -m "$model" --text "$work/text.txt" --ctx 32 --json >"$work/e1" 2>"$work/err" || fail "eval: $(cat "$work/err")"
grep -q '"perplexity":[0-9]' "$work/e1" || fail "eval json: $(cat "$work/e1")"
grep -q '"windows":' "$work/e1" || fail "eval json: $(cat "$work/e1")"

# bench: the table and the JSON
mpi 2 bench -m "$model" --prompt-len 8 --gen 4 --batch 1,2 --reps 1 --warmup 0 --bw-mib 0 --pp 2 --json "$work/b.json" >"$work/out" 2>"$work/err" \
  || fail "bench: $(cat "$work/err")"
grep -q "^| dp1 pp2 tp1 *| *2 | *2 |" "$work/out" || fail "bench table: $(cat "$work/out")"
grep -q '"decode_tok_s"' "$work/b.json" || fail "bench json"
# data parallelism: each replica's own rate, in the table's footer and the JSON
mpi 2 bench -m "$model" --prompt-len 8 --gen 4 --batch 3 --reps 1 --warmup 0 --bw-mib 0 --dp 2 --json "$work/d.json" >"$work/out" 2>"$work/err" \
  || fail "bench dp: $(cat "$work/err")"
grep -q "^batch 3, decode tok/s of each replica alone: [0-9.]* [0-9.]*$" "$work/out" || fail "bench replicas: $(cat "$work/out")"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]["decode_tok_s_per_replica"]; sys.exit(len(r) != 2 or min(r) <= 0)' \
  "$work/d.json" || fail "bench json per replica: $(cat "$work/d.json")"
# --split-wait: waiting for the slowest rank apart from the transfer, a line and JSON
mpi 2 bench -m "$model" --prompt-len 6 --gen 4 --reps 1 --warmup 0 --bw-mib 0 --tp 2 --split-wait --json "$work/w.json" >"$work/out" 2>"$work/err" \
  || fail "bench --split-wait: $(cat "$work/err")"
grep -q "^batch 1: waiting for the slowest rank before all-reduces [0-9.]*% mean / [0-9.]*% max" "$work/out" || fail "bench wait line: $(cat "$work/out")"
grep -q "rank [01] waited least ([0-9.]*%): the others wait for it$" "$work/out" || fail "bench straggler: $(cat "$work/out")"
# per rank: 2 entries each; their mean is the mean over ranks, their largest at most the mean of the per-rep largest
python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]; w, c = r["wait_pct_per_rank"], r["comm_pct_per_rank"]
sys.exit(len(w) != 2 or len(c) != 2 or abs(sum(w) / 2 - r["wait_pct_mean"]) > 1e-9 or abs(sum(c) / 2 - r["comm_pct_mean"]) > 1e-9
         or max(w) > r["wait_pct_max"] + 1e-9 or max(c) > r["comm_pct_max"] + 1e-9)' \
  "$work/w.json" || fail "bench json wait: $(cat "$work/w.json")"
# a pool of requests that the replicas take as they free up: every answer counted
mpi 2 bench -m "$model" --prompt-len 6 --gen 5 --batch 2 --reps 1 --warmup 0 --bw-mib 0 --dp 2 --pool 5 --json "$work/p.json" >"$work/out" 2>"$work/err" \
  || fail "bench --pool: $(cat "$work/err")"
grep -q "^pool: 10 requests of 6 + 3..7 tokens, 2 in flight per replica, .*: [0-9.]* +- [0-9.]* generated tok/s" "$work/out" || fail "bench pool line: $(cat "$work/out")"
python3 -c 'import json, sys; p = json.load(open(sys.argv[1]))["pool"]; sys.exit(p["requests"] != 10 or (p["answer_tokens_min"], p["answer_tokens_max"]) != (3, 7) or p["generated_tok_s"] <= 0)' \
  "$work/p.json" || fail "bench json pool: $(cat "$work/p.json")"
# failures made with address-space limits on one rank (ASan's shadow memory does not
# fit such limits: skipped there)
limits=true
ldd "$bin" | grep -q libasan && limits=false
# the thread pool fails to start on rank 1 alone (1 GiB thread stacks under an 8 GB
# limit): one message naming rank 1 and a non-zero exit, no hang in the launch report
if $limits; then
  # shellcheck disable=SC2016
  timeout 60 "$mpiexec" -n 2 "${flags[@]}" sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then ulimit -s 1048576; ulimit -v 8000000; export MPILLM_THREADS=64; fi; exec "$0" "$@"' \
    "$bin" bench -m "$model" --prompt-len 4 --gen 2 --reps 1 --warmup 0 --bw-mib 0 --tp 2 >"$work/out" 2>"$work/err"
  rc=$?
  [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "thread pool failing on one rank: exit $rc (124: hung)"
  grep -q "\[rank 1\] cannot start thread [0-9]* of 64 for the thread pool" "$work/err" || fail "thread pool message: $(cat "$work/err")"
fi
# OpenBLAS on its generic SSE kernels (forced here) is named with its fix on AVX2+ CPUs
if grep -qw avx2 /proc/cpuinfo && "$bin" info 2>/dev/null | grep -q DYNAMIC_ARCH; then
  OPENBLAS_CORETYPE=Prescott "$bin" info >"$work/out" 2>&1 || fail "info: $(cat "$work/out")"
  grep -q "warning: OpenBLAS uses its Prescott kernels (SSE) .* set OPENBLAS_CORETYPE=" "$work/out" || fail "no BLAS warning: $(cat "$work/out")"
  OPENBLAS_CORETYPE=Haswell "$bin" info >"$work/out" 2>&1 || fail "info: $(cat "$work/out")"
  ! grep -q "warning: OpenBLAS" "$work/out" || fail "BLAS warning with Haswell kernels: $(cat "$work/out")"
fi
# the linear layer's rates: a row per batch size and the sgemm line
"$bin" info --kernel-bench >"$work/out" 2>"$work/err" || fail "info --kernel-bench: $(cat "$work/err")"
grep -q "^sgemm on f32 from cache .*: [0-9.]* GFLOP/s" "$work/out" || fail "kernel-bench sgemm: $(cat "$work/out")"
[ "$(grep -c '^| *[0-9]* | *[0-9.]* | *[0-9]*% |' "$work/out")" = 10 ] || fail "kernel-bench rows: $(cat "$work/out")"
# rank 0 without room for the kernel bench's 1.1 GB of weights: both ranks end, rank 0 named
if $limits; then
  # shellcheck disable=SC2016
  timeout 60 "$mpiexec" -n 2 "${flags[@]}" sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then ulimit -v 900000; fi; exec "$0" "$@"' \
    "$bin" info --kernel-bench >"$work/out" 2>"$work/err"
  rc=$?
  [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "kernel-bench out of memory: exit $rc (124: hung)"
  grep -q "\[rank 0\] kernel-bench: no memory for its 1.1 GB of weights" "$work/err" || fail "kernel-bench memory message: $(cat "$work/err")"
fi

# bad input: one message, non-zero exit on every rank, no hang
expect_error() { # WHAT NEEDLE command...
  local what=$1 needle=$2
  shift 2
  if timeout 60 "$@" >"$work/out" 2>"$work/err"; then fail "$what succeeded"; fi
  [ "$(grep -c 'mpillm: error' "$work/err")" = 1 ] || fail "$what: expected one message: $(cat "$work/err")"
  grep -q -- "$needle" "$work/err" || fail "$what: message lacks '$needle': $(cat "$work/err")"
}
expect_error "wrong world size" "does not fit" "${mpi2[@]}" generate -m "$model" -p hi --tp 3
expect_error "more stages than layers" "needs at least 3 layers" "$mpiexec" -n 3 "${flags[@]}" "$bin" generate -m "$model" -p hi --pp 3
long=$(seq -s, 1 200)
expect_error "prompt beyond the context" "request 0" "${mpi2[@]}" generate -m "$model" --prompt-ids "$long" --dp 2
printf '{"prompt":"a"}\n{"prompt":5}\n' >"$work/req_bad.jsonl"
expect_error "bad request line" "req_bad.jsonl:2" "$bin" generate -m "$model" --input "$work/req_bad.jsonl"
expect_error "no prompt" "exactly one" "$bin" generate -m "$model"
echo "e2e runtime cli: ok"
