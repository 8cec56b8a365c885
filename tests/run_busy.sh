#!/usr/bin/env bash
# Run a command with one core kept busy (tests/burn_cpu.py), as on a shared
# machine where other work runs; the burner is always stopped afterwards.
#
#   bash tests/run_busy.sh python3 -m pytest -n auto -m "not stack" -q -rf
#
# BUSY_CORES=N burns N cores instead of one. Exits with the command's status.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
burners=()
stop() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq "${BUSY_CORES:-1}"); do
  python3 "$here/burn_cpu.py" &
  burners+=("$!")
done
echo "run_busy: burning ${BUSY_CORES:-1} core(s) (pids ${burners[*]})" >&2
"$@"
status=$?
echo "run_busy: command exited $status" >&2
exit "$status"
