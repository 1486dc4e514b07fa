#!/usr/bin/env bash
# A data scientist's client environment, made only from a client bundle, as its
# README.md says: a venv with the bundle's requirements.txt (the cluster's lock),
# installed offline from the wheelhouse archive the cluster was built from.
# Kept while the venv already holds that lock.
#
#   scripts/client_env.sh BUNDLE_DIR VENV_DIR
#
# The venv uses Debian's /usr/bin/python3, the Python the hosts run (Dask compares
# the Python version of clients, scheduler and workers too).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$REPO/scripts/env.sh"

bundle="$1"
venv="$2"
lock="$bundle/requirements.txt"
[[ -f "$lock" ]] || { echo "no requirements.txt in the client bundle $bundle" >&2; exit 1; }
if cmp -s "$lock" "$venv/requirements.txt"; then
  exit 0
fi
environment="$(sed -n 's/^# Environment \([^ ]*\) .*/\1/p' "$lock")"
archive="$(ls "$DASK_WHEELHOUSE_DIR"/dask-"$environment"-py*.tar)"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
tar -xf "$archive" -C "$wheels"
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index \
  --find-links "$wheels/$environment" -r "$lock"
cp "$lock" "$venv/requirements.txt"
