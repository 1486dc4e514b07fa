# shellcheck shell=bash
# Shared environment of the harness, the demo and the test runner (sourced).
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export DASK_CACHE="$REPO/.cache"
export DASK_VENV="$REPO/.venv"
export DASK_BASE_IMAGE="dataplatform-dask/debian:12"
export DASK_WHEELHOUSE_DIR="$DASK_CACHE/wheelhouse"
export ANSIBLE_COLLECTIONS_PATH="$DASK_CACHE/collections"
# One exec per task instead of several (the demo and the tests' ansible-playbook runs).
export ANSIBLE_PIPELINING="${ANSIBLE_PIPELINING:-True}"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-1}"
export PATH="$DASK_VENV/bin:$PATH"
# The older release the rolling-upgrade scenario starts from (its wheelhouse is built too).
export DASK_UPGRADE_FROM_VERSION="2026.7.1"
# The local AWS API (moto server on loopback) of the inventory, provisioning and fleet tests.
export DASK_MOTO_ENDPOINT="${DASK_MOTO_ENDPOINT:-http://127.0.0.1:5055}"
