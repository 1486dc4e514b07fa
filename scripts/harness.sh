#!/usr/bin/env bash
# Prepares this machine for the demo and the test suite (which adds `browser`). Every step is
# idempotent and cached, so `make demo` and `make test` can call it every time.
#
#   scripts/harness.sh [engine|image|venv|wheelhouse|moto|all]...
#
# engine      Debian's docker.io, debootstrap, shellcheck; starts dockerd if no engine answers
# image       the systemd base image (Debian 12, debootstrap + docker import)
# venv        the controller virtualenv from requirements.txt
# wheelhouse  the offline Python wheelhouse the managed hosts install Dask from
# moto        a local AWS API (EC2, Auto Scaling, STS) on loopback, for the AWS tests
# browser     Debian's chromium and chromium-driver (and certutil), for the dashboard test
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$REPO/scripts/env.sh"

log() { printf '\033[1m[harness]\033[0m %s\n' "$*" >&2; }

ensure_engine() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # ansible-test sanity runs shellcheck on the scripts; it must not be skipped.
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    # No systemd on this machine: run the daemon ourselves.
    log "starting dockerd (log: /var/log/dockerd.log)"
    # Its own session: it outlives the shell (or tool job) that started it.
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; exit 1; }
  fi
}

ensure_image() {
  if docker image inspect "$DASK_BASE_IMAGE" >/dev/null 2>&1; then
    return
  fi
  # No registry is reachable: build the base image from Debian's archive.
  log "building $DASK_BASE_IMAGE with debootstrap (about a minute)"
  local root
  root="$(mktemp -d "$DASK_CACHE/rootfs.XXXXXX")"
  debootstrap --variant=minbase \
    --include=python3,systemd,systemd-sysv,sudo,procps,iproute2 \
    bookworm "$root" http://deb.debian.org/debian >"$DASK_CACHE/debootstrap.log" 2>&1 \
    || { log "debootstrap failed; see $DASK_CACHE/debootstrap.log"; exit 1; }
  # A container is not a machine: do not start getty or wait on udev.
  rm -f "$root"/etc/systemd/system/getty.target.wants/* \
        "$root"/lib/systemd/system/multi-user.target.wants/getty.target
  tar -C "$root" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    - "$DASK_BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

ensure_venv() {
  local stamp="$DASK_VENV/.requirements.sha256"
  local want
  want="$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  log "creating the controller venv $DASK_VENV (about a minute)"
  python3 -m venv "$DASK_VENV"
  "$DASK_VENV/bin/pip" install -q -r "$REPO/requirements.txt" >"$DASK_CACHE/pip.log" 2>&1 \
    || { tail -30 "$DASK_CACHE/pip.log"; log "pip install failed"; exit 1; }
  echo "$want" >"$stamp"
}

ensure_ansible_test_bootstrap() {
  # ansible-test --venv bootstraps pip with a script from a host that is not
  # reachable here; it looks for a cached copy first (see the script's docstring).
  local version cache
  version="$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" \
    "$DASK_VENV"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)"
  [[ -n "$version" ]] || { log "cannot find ansible-test's pip version"; exit 1; }
  cache="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
  if ! cmp -s "$REPO/scripts/ansible_test_get_pip.py" "$cache"; then
    mkdir -p "$(dirname "$cache")"
    cp "$REPO/scripts/ansible_test_get_pip.py" "$cache"
  fi
}

ensure_collection_link() {
  # Playbooks and Molecule resolve dataplatform.dask.* through this link to the
  # working tree, so they always run the code being tested.
  local link="$DASK_CACHE/collections/ansible_collections/dataplatform/dask"
  mkdir -p "$(dirname "$link")"
  [[ -L "$link" ]] || ln -sfn "$REPO" "$link"
}

ensure_wheelhouse() {
  ensure_collection_link
  # The default environment (default and monitoring scenarios, the demo), and the
  # cluster's own packages alone (dask_common_data_packages=[], the scenarios that test
  # mechanics) for the default release and the older one the upgrade test starts from.
  local default_version
  default_version="$(sed -n 's/^dask_common_version: "\(.*\)"$/\1/p' "$REPO/roles/dask_common/defaults/main.yml")"
  # The collection's own playbook builds them (what users run for air-gapped hosts);
  # it skips environments whose archive already exists.
  local build
  for build in '{}' \
    "{\"dask_common_data_packages\": [], \"dask_wheelhouse_versions\": [\"$DASK_UPGRADE_FROM_VERSION\", \"$default_version\"]}"; do
    "$DASK_VENV/bin/ansible-playbook" -i localhost, -c local \
      "$REPO/playbooks/wheelhouse.yml" \
      -e "dask_common_wheelhouse_dir=$DASK_WHEELHOUSE_DIR" -e "$build" \
      >>"$DASK_CACHE/wheelhouse.log" 2>&1 \
      || { tail -30 "$DASK_CACHE/wheelhouse.log"; log "wheelhouse build failed"; exit 1; }
  done
}

ensure_browser() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  # certutil: the test trusts the cluster's CA the way a person's browser does (NSS).
  command -v certutil >/dev/null || missing+=(libnss3-tools)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  fi
}

ensure_moto() {
  # The tests reset its state themselves (POST /moto-api/reset); it only has to answer.
  if curl -sf -o /dev/null "$DASK_MOTO_ENDPOINT/moto-api/"; then
    return
  fi
  local hostport="${DASK_MOTO_ENDPOINT#http://}"
  [[ "${hostport%%:*}" == 127.0.0.1 ]] || { log "DASK_MOTO_ENDPOINT must be on loopback"; exit 1; }
  log "starting moto_server on $DASK_MOTO_ENDPOINT (log: $DASK_CACHE/moto.log)"
  nohup "$DASK_VENV/bin/moto_server" -H 127.0.0.1 -p "${hostport##*:}" >"$DASK_CACHE/moto.log" 2>&1 &
  for _ in $(seq 30); do curl -sf -o /dev/null "$DASK_MOTO_ENDPOINT/moto-api/" && return; sleep 1; done
  log "moto_server did not answer; see $DASK_CACHE/moto.log"
  exit 1
}

mkdir -p "$DASK_CACHE"
steps=("$@")
((${#steps[@]})) || steps=(all)
for step in "${steps[@]}"; do
  case "$step" in
    engine) ensure_engine ;;
    image) ensure_engine; ensure_image ;;
    venv) ensure_venv; ensure_collection_link; ensure_ansible_test_bootstrap ;;
    wheelhouse) ensure_venv; ensure_wheelhouse ;;
    moto) ensure_engine; ensure_venv; ensure_moto ;;
    browser) ensure_browser ;;
    all) ensure_engine; ensure_image; ensure_venv; ensure_ansible_test_bootstrap; ensure_wheelhouse; ensure_moto ;;
    *) log "unknown step: $step"; exit 2 ;;
  esac
done
