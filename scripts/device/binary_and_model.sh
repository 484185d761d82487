# Sourced by dp_study.sh and tp_study.sh (THERE, on the device host): mpillm and the
# 1.39 GB bench model, unless the caller names them.
#   binary_and_model ROOT WORK: unless MPILLM_BIN is set, builds with build.sh and
#   sources build-device/env.sh (which sets MPILLM_BIN); unless MODEL_H5 names a model,
#   makes one with make_model.py and `mpillm convert` into WORK/model.h5; sets `model`.
#   Needs the caller's `say`; returns 1 after saying what failed.
binary_and_model() {
  local root=$1 work=$2
  if [ -z "${MPILLM_BIN:-}" ]; then
    timeout 300 bash "$root/scripts/device/build.sh" >"$work/build.log" 2>&1 ||
      { tail -n 30 "$work/build.log"; say "build failed"; return 1; }
    # shellcheck disable=SC1091
    . "$root/build-device/env.sh"
  fi
  model=${MODEL_H5:-$work/model.h5}
  if [ ! -f "$model" ]; then
    if ! timeout 200 python3 "$root/scripts/device/make_model.py" "$work/hf" --size device ||
       ! timeout 200 "$MPILLM_BIN" convert "$work/hf" -o "$model" >/dev/null; then
      say "model failed"; return 1
    fi
    rm -rf "$work/hf"
  fi
  say "binary $MPILLM_BIN, model $model ($(du -h "$model" | cut -f1))"
}
