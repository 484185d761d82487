#!/usr/bin/env bash
# launch/mpillm-run: the mpirun command it builds for this machine, a hostfile and a
# Slurm allocation (--dry-run), its refusals, and one real run whose start-up line
# shows the ranks, threads and binding it asked for.
set -uo pipefail
src=${MPILLM_SOURCE_DIR:?run through ctest}
run=$src/launch/mpillm-run
export MPILLM=${MPILLM_BIN:?run through ctest}
unset SLURM_JOB_ID SLURM_NNODES SLURM_NTASKS SLURM_CPUS_PER_TASK SLURM_NTASKS_PER_NODE
failed=0
expect() { # what output pattern
  if ! grep -qF -- "$3" <<<"$2"; then echo "FAIL: $1: lacks '$3' in: $2"; failed=1; fi
}
cores=$(nproc --all)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$run" --dry-run -n 1 -t 1 info 2>&1)
expect "one rank" "$out" "-np 1 --map-by ppr:1:node:PE=1 --bind-to core"
expect "threads reach the ranks" "$out" "-x OPENBLAS_NUM_THREADS=1 -x MPILLM_THREADS=1 -x OMP_NUM_THREADS=1"
expect "the binary" "$out" "$MPILLM info"
out=$("$run" --dry-run -n $((cores + 1)) -t 2 info 2>&1)
expect "oversubscribed" "$out" "warning: $((cores + 1)) ranks x 2 threads > $cores cores here"
expect "oversubscribed flags" "$out" "--bind-to none --oversubscribe"
out=$("$run" --dry-run -n 1 --bind socket info 2>&1)
expect "socket" "$out" "--map-by socket --bind-to socket"
printf '# two nodes\nnodeA slots=2\n\nnodeB slots=2\n' > "$tmp/hosts"
out=$("$run" --dry-run -H "$tmp/hosts" -N 2 -t 4 info 2>&1)
expect "hostfile" "$out" "-np 4 --hostfile $tmp/hosts --map-by ppr:2:node:PE=4 --bind-to core"
out=$(SLURM_JOB_ID=7 SLURM_NNODES=2 SLURM_NTASKS=4 SLURM_CPUS_PER_TASK=3 "$run" --dry-run info 2>&1)
expect "slurm allocation" "$out" "4 ranks on Slurm job 7 (2 nodes), 2 per node, 3 threads each"
expect "slurm allocation" "$out" "-np 4 --map-by ppr:2:node:PE=3 --bind-to core"
out=$("$run" --dry-run -n 1 /bin/true 2>&1)
expect "a program runs as is" "$out" " /bin/true"
out=$("$run" --bind cores info 2>&1); rc=$?
[ "$rc" = 2 ] || { echo "FAIL: a bad --bind exits $rc, not 2"; failed=1; }
expect "bad bind" "$out" "--bind is core, socket, numa or none, not 'cores'"
out=$("$run" -n 0 info 2>&1); rc=$?
[ "$rc" = 2 ] || { echo "FAIL: -n 0 exits $rc, not 2"; failed=1; }
out=$("$run" -H /nonexistent/hosts info 2>&1)
expect "missing hostfile" "$out" "hostfile '/nonexistent/hosts' cannot be read"

# a real run: what the ranks report is what was asked
out=$("$run" -n 2 -t 1 info 2>&1)
expect "real run" "$out" "launch: Open MPI mpirun | 2 ranks on 1 node (2 per node) | 1 thread per rank (from MPILLM_THREADS)"
[ "$failed" = 0 ] && echo "PASS: mpillm-run"
exit "$failed"
