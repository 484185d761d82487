# Sourced by dp_study.sh, tp_study.sh, pp_study.sh and ab_study.sh, and by ../device_scaling.sh for the build and
# model only (THERE, on the device host): the start every
# study shares, and mpillm and the 1.39 GB bench model unless the caller names them.
#   study_start NAME: needs OUT (the results folder); everything printed from here on
#   also goes to OUT/log.txt; sets work (WORK, default /tmp/mpl_NAME) and res
#   (work/results), one thread per rank and Open MPI on shared memory as root, and
#   say (prints "NAME [seconds since the start]: ...").
#   binary_and_model ROOT WORK: unless MPILLM_BIN is set, builds with build.sh and
#   sources build-device/env.sh (which sets MPILLM_BIN); unless MODEL_H5 names a model,
#   makes one with make_model.py and `mpillm convert` into WORK/model.h5; sets `model`.
#   Returns 1 after saying what failed.
study_start() {
  study_name=$1
  : "${OUT:?set OUT to the folder for the results}"
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/log.txt") 2>&1
  work=${WORK:-/tmp/mpl_$1}
  res=$work/results
  mkdir -p "$work" "$res"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE
  export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
  export OPENBLAS_NUM_THREADS=1 MPILLM_THREADS=1 OMP_NUM_THREADS=1
  study_t0=$(date +%s)
}
say() { echo "$study_name [$(($(date +%s) - study_t0)) s]: $*"; }

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
