#!/usr/bin/env bash
# Tears down the Slurm of scripts/slurm/up.sh: cancels its jobs, stops slurmd,
# slurmctld and munged (waiting for each to exit) and removes its directory.
# Safe to run twice or after a failed up.sh.
#   scripts/slurm/down.sh [--dir DIR] [--keep-logs]
set -uo pipefail
dir=${MPILLM_SLURM_DIR:-/tmp/mpillm-slurm} keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift ;;
    --keep-logs) keep=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "down.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -d "$dir" ] || exit 0
export SLURM_CONF=$dir/etc/slurm.conf
if [ -f "$SLURM_CONF" ] && [ -f "$dir/run/slurmctld.pid" ]; then
  timeout 5 scancel --full --quiet --user=root >/dev/null 2>&1 || true
fi
stop() { # pid file: TERM, wait up to 10 s, then KILL
  local pid_file=$1 pid
  [ -f "$pid_file" ] || return 0
  pid=$(cat "$pid_file" 2>/dev/null) || return 0
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || { rm -f "$pid_file"; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$pid_file"
}
for f in "$dir"/run/slurmd-*.pid; do [ -e "$f" ] && stop "$f"; done
stop "$dir/run/slurmctld.pid"
stop "$dir/run/munged.pid"
if [ "$keep" = 1 ]; then
  rm -rf "$dir"/{state,spool,tmp,munge,run,env.sh}
  echo "down.sh: Slurm stopped; logs kept in $dir/log"
else
  rm -rf "$dir"
  echo "down.sh: Slurm stopped and $dir removed"
fi
