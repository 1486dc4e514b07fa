"""Fixtures of the rolling-upgrade verify step: the hosts (docker backend, same
names as the inventory), the long-lived client session, and readings of what runs."""

import json
import re

import pytest

from client_session import DASK_PYTHON, Sessions
from helpers import get_host, run_playbook

SCHEDULER = "dask-upgrade-scheduler"
WORKERS = ["dask-upgrade-worker-1", "dask-upgrade-worker-2", "dask-upgrade-worker-3"]
HOSTS = [SCHEDULER, *WORKERS]


@pytest.fixture
def session(request):
    """Start a client session named after the test; call with the number of workers."""
    sessions = Sessions(SCHEDULER, request.node.name, len(WORKERS))
    yield sessions
    sessions.close()


def running_environment(name, unit):
    """The environment (<release>-<id>) the unit's main process runs: its interpreter's path
    names the venv it started from, whatever the current link says now."""
    host = get_host(name)
    pid = host.service(unit).systemd_properties["MainPID"]
    interpreter = host.file(f"/proc/{pid}/cmdline").content.split(b"\0")[0].decode()
    return interpreter.split("/opt/dask/venvs/", 1)[1].split("/", 1)[0]


def dask_versions():
    """Dask release each worker's process runs, read from the hosts."""
    return {w: running_environment(w, "dask-worker.service").split("-", 1)[0] for w in WORKERS}


WORKER_FACTS = r"""
import json, resource, sys
from importlib.metadata import version, PackageNotFoundError
from distributed import Client

def facts(dask_worker):
    try:
        tabulate = version("tabulate")
    except PackageNotFoundError:
        tabulate = None
    return {"memory_target": dask_worker.memory_manager.memory_target_fraction,
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "tabulate": tabulate}

with Client(sys.argv[1], timeout=30) as client:
    names = {a: str(w["name"]) for a, w in client.sync(client.scheduler.identity, n_workers=-1)["workers"].items()}
    print(json.dumps({names[a]: f for a, f in client.run(facts).items()}))
"""


WORKER_STATUSES = r"""
import json, sys
from distributed import Client

with Client(sys.argv[1], timeout=30) as client:
    workers = client.sync(client.scheduler.identity, n_workers=-1)["workers"].values()
    print(json.dumps({str(w["name"]): w["status"] for w in workers}))
"""


def scheduler_address():
    """The scheduler's address as a client on its host reaches it (tls:// unless opted out)."""
    host = get_host(SCHEDULER)
    scheme = "tls" if host.file("/etc/dask/20-tls.yaml").exists else "tcp"
    return f"{scheme}://" + host.check_output("hostname -I").split()[0] + ":8786"


def run_as_client(source):
    """Run a client script on the scheduler host with the cluster's Dask; its last line, as JSON."""
    out = get_host(SCHEDULER).check_output(f"{DASK_PYTHON} - {scheduler_address()} <<'EOF'\n{source}\nEOF")
    return json.loads(out.splitlines()[-1])


def running_worker_facts():
    """What each running worker process has, asked through a client: its memory target,
    its open-file limit and its version of tabulate (the package the tests add)."""
    return run_as_client(WORKER_FACTS)


def worker_statuses():
    """{worker name: status} of the registered workers, as the scheduler has them."""
    return run_as_client(WORKER_STATUSES)


def health(consistent=False):
    """health.yml's run and the restarts pending it reports, {host: [parts]}."""
    run = run_playbook("health.yml", "-e", f"dask_health_require_consistent_versions={consistent}")
    pending = {host: parts.split(", ") for host, parts in re.findall(r'"Restart pending on (\S+): ([^"]*)"', run.output)}
    return run, pending
