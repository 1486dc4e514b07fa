#!/usr/bin/env bash
# The whole suite, as `make test` runs it. Every stage must run: a missing tool
# fails the suite rather than skipping a stage.
#
#   scripts/test.sh [lint|sanity|unit|integration|molecule|collection]...   (default: all, in this order)
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

molecule_all() {
  stage "molecule (every scenario)"
  molecule test --all
}

collection() {
  stage "installed collection: build, install, deploy the demo from outside the repo, compute"
  "$REPO/scripts/demo.sh" up
  "$REPO/scripts/demo.sh" down
}

"$REPO/scripts/harness.sh" all browser
stages=("$@")
((${#stages[@]})) || stages=(lint sanity unit integration molecule collection)
for s in "${stages[@]}"; do
  case "$s" in
    lint) lint ;;
    sanity) sanity ;;
    unit) unit ;;
    integration) integration ;;
    molecule) molecule_all ;;
    collection) collection ;;
    *) echo "unknown stage: $s" >&2; exit 2 ;;
  esac
done
stage "all stages passed: ${stages[*]}"
