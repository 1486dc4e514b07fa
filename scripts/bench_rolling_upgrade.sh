#!/usr/bin/env bash
# Measures a rolling upgrade of 3 workers under load: runs the Molecule scenario
# `rolling_upgrade` (its test writes the figures) and prints them as a table.
#   scripts/bench_rolling_upgrade.sh [--no-run]   (--no-run: print the last figures)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$REPO/scripts/env.sh"
figures="$DASK_CACHE/bench/rolling_upgrade.json"
if [[ "${1:-}" != --no-run ]]; then
  "$REPO/scripts/harness.sh" all
  mkdir -p "$DASK_CACHE/bench"
  rm -f "$figures"
  (cd "$REPO" && molecule test -s rolling_upgrade >"$DASK_CACHE/bench/rolling_upgrade.log" 2>&1) \
    || { echo "the scenario failed; see $DASK_CACHE/bench/rolling_upgrade.log" >&2; exit 1; }
fi
python3 - "$figures" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
before, during = f["tasks_per_second_before"], f["tasks_per_second_during"]
rows = [
    ("workers upgraded", f["workers"]),
    ("total time (s)", f["total_seconds"]),
    ("time per worker (s)", f["per_worker_seconds"]),
    ("client throughput before (tasks/s)", round(before, 1) if before else "n/a"),
    ("client throughput during (tasks/s)", round(during, 1) if during else "n/a"),
    ("throughput kept (during/before)", f"{during / before:.0%}" if before and during else "n/a"),
    ("minimum running workers seen", f["min_running_workers"]),
    ("results held / lost", f"{f['results_held']} / {f['results_lost']}"),
    ("client tasks failed", f["tasks_failed"]),
]
width = max(len(r[0]) for r in rows)
for name, value in rows:
    print(f"{name:<{width}}  {value}")
PY
