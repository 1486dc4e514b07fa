#!/usr/bin/env bash
# The whole suite, as `make test` runs it. Every stage must run: a missing tool
# fails the suite rather than skipping a stage.
#
#   scripts/test.sh [lint|sanity|unit|integration|molecule|collection|<scenario>]...
#
# Without arguments it runs everything in two lanes at once (see LANES), then the
# collection stage. Named stages run one after the other; a scenario's name runs that
# scenario alone.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$REPO/scripts/env.sh"
cd "$REPO"

stage() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

lint() {
  stage "yamllint"
  yamllint --strict .
  stage "antsibull-changelog lint"
  antsibull-changelog lint
  stage "ansible-lint (production profile)"
  ansible-lint
}

sanity() {
  stage "ansible-test sanity"
  # ansible-test needs the collection at ansible_collections/<namespace>/<name>,
  # as real files, on a path without hidden directories (it skips those):
  # copy the tracked tree there.
  local top="${TMPDIR:-/tmp}/dataplatform-dask-sanity"
  local root="$top/ansible_collections/dataplatform/dask"
  rm -rf "$top"
  mkdir -p "$root"
  git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$root"
  (cd "$root" && ansible-test sanity --venv --python 3.11 --color yes)
}

unit() {
  stage "pytest unit tests"
  pytest -q tests/unit
}

integration() {
  stage "AWS integration tests (inventory, provisioning) against the local moto server"
  pytest -q tests/integration
}

# Each scenario's log is .cache/logs/molecule-<scenario>.log; a failure prints its end.
scenario() {
  local name="$1" log="$DASK_CACHE/logs/molecule-$1.log" start=$SECONDS
  mkdir -p "$DASK_CACHE/logs"
  stage "molecule scenario $name (log: $log)"
  if ! molecule test -s "$name" >"$log" 2>&1; then
    tail -n 150 "$log"
    stage "molecule scenario $name FAILED after $((SECONDS - start)) s"
    return 1
  fi
  # pytest's summary line, e.g. "41 passed in 580.12s".
  grep -aoE '[0-9]+ passed[^=]* in [0-9.]+s' "$log" | tail -n 1 || true
  stage "molecule scenario $name passed in $((SECONDS - start)) s"
}

# Two lanes run at once: a scenario spends much of its time waiting (systemd, Dask's
# timers, retirements, pip on two cores), so two share the machine well. The lanes hold
# about the same time. The integration tests and the fleet scenario share the loopback
# moto server (the tests reset it), so they stay in one lane.
LANES=(
  "lint sanity unit integration fleet default monitoring"
  "rolling_upgrade tls freeipa efs"
)

run_stage() {
  case "$1" in
    lint) lint ;;
    sanity) sanity ;;
    unit) unit ;;
    integration) integration ;;
    molecule) local f; for f in molecule/*/molecule.yml; do scenario "$(basename "$(dirname "$f")")"; done ;;
    collection) collection ;;
    *) if [[ -f "molecule/$1/molecule.yml" ]]; then scenario "$1"
       else echo "unknown stage: $1" >&2; return 2; fi ;;
  esac
}

# Runs in the background: errexit stops the lane at its first failing stage.
run_lane() {
  local s
  for s in $1; do run_stage "$s"; done
}

# Every scenario must be in a lane: a new one would otherwise never run.
check_lanes() {
  local dir name
  for dir in molecule/*/molecule.yml; do
    name="$(basename "$(dirname "$dir")")"
    [[ " ${LANES[*]} " == *" $name "* ]] || { echo "molecule/$name is in no lane of scripts/test.sh" >&2; exit 2; }
  done
}

collection() {
  stage "installed collection: build, install, deploy the demo from outside the repo, compute"
  "$REPO/scripts/demo.sh" up
  "$REPO/scripts/demo.sh" down
}

"$REPO/scripts/harness.sh" all browser
check_lanes
if (($#)); then
  for s in "$@"; do run_stage "$s"; done
  stage "all stages passed: $*"
  exit 0
fi

start=$SECONDS
pids=()
for lane in "${LANES[@]}"; do
  run_lane "$lane" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
((failed == 0)) || { stage "a lane failed (its scenario's log is printed above)"; exit 1; }
run_stage collection
stage "all stages passed in $((SECONDS - start)) s"
