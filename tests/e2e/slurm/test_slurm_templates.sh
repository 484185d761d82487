#!/usr/bin/env bash
# End to end on a real Slurm: brings up a throw-away Slurm of 2 emulated nodes
# (scripts/slurm/up.sh), submits the batch templates of launch/slurm/ with sbatch
# (generate with srun and with mpirun inside the allocation, serve on a spool, the
# strong- and weak-scaling sweeps), waits for them, checks their outputs, and tears
# Slurm down in a trap, also when a check fails. Needs root and the packages of
# scripts/setup.sh --tests; installs nothing.
set -euo pipefail
src=${MPILLM_SOURCE_DIR:?run through ctest}
bin=${MPILLM_BIN:?run through ctest}
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: slurmd must run as root to start jobs; this test runs as $(id -un)"
  exit 77
fi
dir=$(mktemp -d /tmp/mpillm-slurm-e2e.XXXXXX)
failed=0
cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] || [ "$failed" != 0 ]; then
    echo "--- job outputs and Slurm logs of the failed run:"
    for f in "$dir"/work/*.out "$dir"/log/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
  fi
  "$src/scripts/slurm/down.sh" --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; failed=1; }

# 4 CPUs per node on any machine: the 5 jobs (12 CPUs) run side by side, most of
# their time is start-up, not computation
timeout 60 "$src/scripts/slurm/up.sh" --nodes 2 --cpus 4 --dir "$dir"
source "$dir/env.sh"
work=$dir/work
mkdir -p "$work/spool/inbox"

# what the jobs see: this build's binary, TCP between the emulated nodes (shared
# memory across them crashes), and a model when one is in the tree (until the
# generate and bench commands exist the templates run `mpillm info` and say so)
export MPILLM=$bin OMPI_MCA_btl=self,tcp
# (the small LLaMA fixture, converted, keeps the jobs to seconds on 2 cores)
if "$bin" convert --help >/dev/null 2>&1; then
  export MODEL=$work/model.h5
  timeout 30 "$bin" convert "$src/tests/fixtures/llama_gqa/hf" -o "$MODEL" >/dev/null
else
  export MODEL=$src/models/kjv/model.h5
fi
printf '{"id": "a", "prompt": "In the beginning", "max_tokens": 4}\n' > "$work/spool/inbox/req1.jsonl"
printf '{"id": "b", "prompt": "And God said", "max_tokens": 4}\n' > "$work/spool/inbox/req2.jsonl"
touch "$work/spool/stop"

submit() { # name template [sbatch options...]
  local name=$1 template=$2; shift 2
  timeout 10 sbatch --parsable -D "$work" --job-name="$name" --output="$work/$name.out" \
    "$@" "$src/launch/slurm/$template"
}
declare -A jobs
jobs[generate]=$(submit generate generate.sbatch --export=ALL,MAX_TOKENS=4)
jobs[generate-mpirun]=$(submit generate-mpirun generate.sbatch --export=ALL,LAUNCHER=mpirun,MAX_TOKENS=4)
jobs[serve]=$(submit serve serve.sbatch --export=ALL,SPOOL=$work/spool,POLL_SECONDS=1,SERVE_SECONDS=60 --time=2)
jobs[strong]=$(submit strong strong-scaling.sbatch --export=ALL,OUT_DIR=$work/strong,PROMPT_LEN=8,GEN=4)
jobs[weak]=$(submit weak weak-scaling.sbatch --export=ALL,OUT_DIR=$work/weak,PROMPT_LEN=8,GEN=4 \
  --ntasks-per-node=2)

# a job asking for more CPUs than any node has is refused at once, not left pending
if timeout 10 sbatch --parsable --cpus-per-task=64 --wrap=true >/dev/null 2>&1; then
  fail "sbatch accepted a job of 64 CPUs per task on 4-CPU nodes (EnforcePartLimits)"
fi

deadline=$((SECONDS + 120))
while [ -n "$(timeout 10 squeue -h -o %i)" ]; do
  if [ $SECONDS -ge $deadline ]; then
    fail "jobs still queued or running after 120 s:"; timeout 10 squeue || true
    exit 1
  fi
  sleep 0.5
done

for name in "${!jobs[@]}"; do
  state=$(timeout 10 scontrol show job "${jobs[$name]}" | grep -o 'JobState=[A-Z_]*\|ExitCode=[0-9:]*' | tr '\n' ' ')
  [ "$state" = "JobState=COMPLETED ExitCode=0:0 " ] || fail "$name (job ${jobs[$name]}): $state"
done
has() { grep -qF -- "$2" "$work/$1.out" || fail "$1.out lacks: $2"; }

# every rank-0 start-up line names the launcher the job used and the emulated nodes
has generate "launch: Slurm job ${jobs[generate]} step"
has generate "2 ranks on 2 nodes (1 per node) | 1 thread per rank (from MPILLM_THREADS)"
has generate-mpirun "launch: Slurm job ${jobs[generate-mpirun]}, mpirun inside the allocation"
has generate-mpirun "2 ranks on 2 nodes (1 per node)"
has serve "served 2 request files, 0 failed"
for r in req1 req2; do
  [ -s "$work/spool/done/$r.answers.jsonl" ] || fail "serve wrote no answers for $r"
  [ -f "$work/spool/done/$r.jsonl" ] || fail "serve did not move $r.jsonl to done/"
done
has strong "== 1 nodes, 1 ranks, --tp 1"
has strong "== 2 nodes, 2 ranks, --tp 2, batch 4 per replica"
has strong "1 ranks on 1 node"
has strong "2 ranks on 2 nodes"
has weak "== 2 nodes, 4 ranks, --dp 4, batch 2 per replica"
has weak "4 ranks on 2 nodes (2 per node)"
for sweep in strong weak; do
  if grep -q "no bench command yet" "$work/$sweep.out"; then
    echo "note: $sweep sweep ran 'mpillm info --comm-bench' (no bench command in this build)"
  else
    for n in 1 2; do
      python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/$sweep/$sweep-n$n.json" ||
        fail "$sweep-n$n.json is missing or not JSON"
    done
  fi
done
[ "$failed" = 0 ] || exit 1
echo "PASS: 5 Slurm jobs completed and their outputs check"
