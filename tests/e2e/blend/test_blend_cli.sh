#!/usr/bin/env bash
# The seed network through the binary: blend-init, infer at 3 ranks (model and mix
# agree, checked with h5diff; every mode and alpha against numpy is the MPI tests'
# job), convert --from keras against the numpy reference, bench -m blend.h5 with JSON, and
# bad input that must end every rank with exit 1 and exactly one error message.
set -uo pipefail
bin=${MPILLM_BIN:?} src=${MPILLM_SOURCE_DIR:?}
read -r -a mpi_flags <<< "${MPIEXEC_FLAGS:-}"
run() { "${MPIEXEC:-mpiexec}" -n "$1" "${mpi_flags[@]}" "${@:2}"; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_error NAME NEEDLE CMD...: non-zero exit, one "mpillm: error:" line holding NEEDLE
expect_error() {
  local name=$1 needle=$2
  shift 2
  "$@" >"$dir/out" 2>"$dir/err"
  local rc=$? n
  n=$(grep -c "mpillm: error:" "$dir/err")
  if [ "$rc" -ne 0 ] && [ "$n" -eq 1 ] && grep -qF -- "$needle" "$dir/err"; then ok
  else bad "$name: rc $rc, $n error lines, wanted '$needle':"; cat "$dir/err"; fi
}

# same A B NAME: dataset /NAME of two files within 1e-5 (attributes such as crc32 aside)
same() { h5diff -d 1e-5 --exclude-attribute "/$3" "$1" "$2" "/$3" "/$3" >/dev/null; }

m=$dir/small.h5
"$bin" blend-init --submodels 5 --in-widths 3,4,2,5,6 --hidden 8 --classes 6 -o "$m" >/dev/null \
  && ok || bad "blend-init"
# inspect: the seed network's own config and every tensor checked, exit 0
"$bin" inspect "$m" >"$dir/out" 2>&1 && grep -q "^  in_widths  *3,4,2,5,6$" "$dir/out" \
  && grep -q "^[0-9]* tensors, .*, 0 checksum failures$" "$dir/out" && ok || { bad "inspect"; cat "$dir/out"; }
# the rows: the L3 fixture's x has 20 features, as many as this model's widths add up to
x=$src/tests/fixtures/blend/keras_L3.ref.h5
for mode in model mix; do
  run 3 "$bin" infer -m "$m" --input "$x" --mode "$mode" --alpha 0.4 -o "$dir/$mode.h5" --save-z \
    2>"$dir/err" && ok || { bad "infer --mode $mode"; cat "$dir/err"; }
done
for mode in mix; do
  same "$dir/model.h5" "$dir/$mode.h5" probs && ok || bad "probs of $mode differ from model"
  same "$dir/model.h5" "$dir/$mode.h5" z && ok || bad "z of $mode differs from model"
done
run 2 "$bin" bench -m "$m" --rows 1,5 --modes model,data,split --alpha 0.5 --reps 1 \
  --json "$dir/bench.json" >"$dir/bench.txt" 2>"$dir/err" && ok || { bad "bench"; cat "$dir/err"; }
grep -q '"rows_per_s"' "$dir/bench.json" 2>/dev/null && grep -q "| split  |  0.50 |" "$dir/bench.txt" \
  && ok || bad "bench output"

# the Keras fixture through `convert --from keras`, then infer against numpy's answer
k=$dir/keras_L5.h5 ref=$src/tests/fixtures/blend/keras_L5.ref.h5
"$bin" convert --from keras "$src/tests/fixtures/blend/keras_L5.keras.h5" -o "$k" >/dev/null \
  && ok || bad "convert --from keras"
run 3 "$bin" infer -m "$k" --input "$ref" --mode split --alpha 0.3 -o "$dir/k.h5" --save-z 2>"$dir/err" \
  && ok || { bad "infer of the converted Keras model"; cat "$dir/err"; }
same "$dir/k.h5" "$ref" probs && ok || bad "Keras L5 probs differ from numpy"
same "$dir/k.h5" "$ref" z && ok || bad "Keras L5 z differs from numpy"
expect_error "keras" "not a Keras model" \
  "$bin" convert --from keras "$m" -o "$dir/never.h5"

expect_error "alpha" "--alpha 1.5 is outside [0, 1]" \
  run 2 "$bin" infer -m "$m" --input "$x" --mode split --alpha 1.5 -o "$dir/never.h5"
expect_error "features" "has 25 features per row but the model" \
  "$bin" infer -m "$m" --input "$src/tests/fixtures/blend/keras_L5.ref.h5" -o "$dir/never.h5"
expect_error "mode" "--mode 'pipeline' is not one of" \
  "$bin" infer -m "$m" --input "$x" --mode pipeline -o "$dir/never.h5"
expect_error "widths" "--in-widths lists 4 widths but --submodels is 5" \
  "$bin" blend-init --submodels 5 --in-widths 3,4,2,5 --hidden 8 --classes 6 -o "$dir/never.h5"
expect_error "widths sum" "add up to 20 features, not --features 21" \
  "$bin" blend-init --submodels 5 --in-widths 3,4,2,5,6 --features 21 --hidden 8 --classes 6 -o "$dir/never.h5"
expect_error "not a model" "not an mpillm model file" \
  run 2 "$bin" infer -m "$x" --input "$x" -o "$dir/never.h5"
[ -e "$dir/never.h5" ] && bad "a failed command left never.h5" || ok

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
