#!/usr/bin/env bash
# The local demo: 1 scheduler + 2 workers in systemd containers, deployed by the
# collection's site playbook as an installed collection (built from this tree with
# ansible-galaxy, run from outside the repository), then an example dataframe
# computation from this machine with a client environment made from the client bundle.
#
#   scripts/demo.sh up     create or reuse the containers, deploy, compute
#   scripts/demo.sh down   remove the containers and their network
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$REPO/scripts/env.sh"

NETWORK=dask-demo
SCHEDULER=dask-demo-scheduler
WORKERS=(dask-demo-worker-1 dask-demo-worker-2)
DASHBOARD_PORT=8787
INSTALLED="$DASK_CACHE/demo-collections"

log() { printf '\033[1m[demo]\033[0m %s\n' "$*" >&2; }

start_host() {
  local name="$1"; shift
  if [[ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" == true ]]; then
    return
  fi
  docker rm -f "$name" >/dev/null 2>&1 || true
  local systemd_args
  mapfile -t systemd_args < <(systemd_run_args)
  docker run -d --name "$name" --hostname "$name" --network "$NETWORK" \
    "${systemd_args[@]}" --label dataplatform.dask.demo=true "$@" "$DASK_BASE_IMAGE" >/dev/null
}

# systemd without --privileged (see ../shared/ENVIRONMENT.md), as every Molecule host.
systemd_run_args() {
  "$DASK_VENV/bin/python" "$REPO/scripts/systemd_host.py"
}

install_collection() {
  # What a user does: build the artifact, install it into a collections path.
  rm -rf "$DASK_CACHE/dist" "$INSTALLED"
  ansible-galaxy collection build --force --output-path "$DASK_CACHE/dist" "$REPO" >/dev/null
  ansible-galaxy collection install --force -p "$INSTALLED" "$DASK_CACHE"/dist/dataplatform-dask-*.tar.gz >/dev/null
}

up() {
  "$REPO/scripts/harness.sh" all
  install_collection
  docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
  start_host "$SCHEDULER" -p "127.0.0.1:$DASHBOARD_PORT:$DASHBOARD_PORT"
  for worker in "${WORKERS[@]}"; do start_host "$worker"; done
  for host in "$SCHEDULER" "${WORKERS[@]}"; do
    until docker exec "$host" systemctl is-system-running --wait >/dev/null 2>&1; do
      [[ "$(docker exec "$host" systemctl is-system-running 2>/dev/null)" == degraded ]] && break
      sleep 1
    done
  done

  log "deploying with ansible-playbook dataplatform.dask.site (installed collection)"
  local rundir
  rundir="$(mktemp -d)"
  (cd "$rundir" && ANSIBLE_COLLECTIONS_PATH="$INSTALLED" \
    ansible-playbook dataplatform.dask.site -i "$REPO/inventories/demo/hosts.yml")
  rm -rf "$rundir"

  local address bundle="$DASK_CACHE/demo-ca/clients/client"
  address="tls://$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$SCHEDULER"):8786"
  log "making a client environment from the client bundle $bundle"
  "$REPO/scripts/client_env.sh" "$bundle" "$DASK_CACHE/demo-client-venv"
  log "running an example computation from this machine, as a notebook would"
  DASK_CONFIG="$bundle" "$DASK_CACHE/demo-client-venv/bin/python" "$REPO/scripts/demo_compute.py" "$address" "${#WORKERS[@]}"
  cat <<EOF

Dask cluster is up: 1 scheduler, ${#WORKERS[@]} workers (containers on network $NETWORK).
  scheduler address : $address  (mutual TLS; from this machine or the containers)
  client bundle     : $bundle
                      (README.md: install requirements.txt, copy dask-tls.yaml, connect)
  client venv       : $DASK_CACHE/demo-client-venv  (made from the bundle)
  dashboard         : http://127.0.0.1:$DASHBOARD_PORT/status
  a shell on a host : docker exec -it $SCHEDULER bash
  remove it         : make demo-down
EOF
}

down() {
  docker rm -f "$SCHEDULER" "${WORKERS[@]}" >/dev/null 2>&1 || true
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
  log "demo cluster removed"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
