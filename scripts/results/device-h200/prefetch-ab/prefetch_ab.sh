#!/usr/bin/env bash
# One device command: A/B of the next-block prefetch (XNOPF=1 turns it off) in the
# dp pool (dp_study.sh STUDY=repeat, one pair per run) on CPUs 0-7 ("low") and 8-15
# ("high"). RUNS: "name:place:variant ..."; every result goes into $OUT/ab.tar.gz after
# each run, the log into $OUT/log.txt.
set -uo pipefail
root=$(pwd)
O=$OUT
A=/tmp/ab
mkdir -p $A
exec > >(tee -a "$O/log.txt") 2>&1
t0=$(date +%s)
for spec in ${RUNS:-lowB1:low:B lowA1:low:A lowB2:low:B lowA2:low:A highA1:high:A}; do
  IFS=: read -r name place v <<<"$spec"
  echo "=== $name [$(( $(date +%s) - t0 )) s]"
  flag=()
  [ "$v" = A ] && flag=(XNOPF=1)
  env "${flag[@]}" OUT=$A/$name STUDY=repeat REPEAT_PLACE=$place POOL=48 PAIRS=1 SKIP_PROBE=1 REPS=1 \
    STEP_TIMEOUT=110 WORK=/tmp/w bash scripts/device/dp_study.sh >/dev/null 2>&1
  grep -E "^\| dp|pool:" "$A/$name/log.txt"
  export MPILLM_BIN=$root/build-device/mpillm MODEL_H5=/tmp/w/model.h5
  tar -czf "$O/ab.tar.gz" -C $A .
done
echo "=== end [$(( $(date +%s) - t0 )) s]"
