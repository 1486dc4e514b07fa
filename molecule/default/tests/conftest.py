"""Fixtures for the Molecule verify step: the cluster's hosts (docker backend,
same names as the inventory) and a way to run Python with the cluster's own Dask."""

import base64
import json
import textwrap

import pytest

from helpers import get_host, run_playbook

DASK_PYTHON = "/opt/dask/venvs/current/bin/python"
SCHEDULER = "dask-scheduler"
WORKERS = ["dask-worker-1", "dask-worker-2"]


def private_address(host):
    return host.check_output("hostname -I").split()[0]


@pytest.fixture(scope="session")
def scheduler():
    return get_host(SCHEDULER)


@pytest.fixture(scope="session")
def workers():
    return [get_host(name) for name in WORKERS]


@pytest.fixture(scope="session")
def scheduler_address(scheduler):
    return f"tls://{private_address(scheduler)}:8786"


def run_python(host, source, *args):
    """Run Python source on a host with the Dask venv; return the completed command."""
    encoded = base64.b64encode(textwrap.dedent(source).encode()).decode()
    quoted = " ".join(f"'{a}'" for a in args)
    return host.run(f"echo {encoded} | base64 -d | {DASK_PYTHON} - {quoted}")


@pytest.fixture(scope="session")
def dask_json(scheduler, scheduler_address):
    """Run a snippet that prints one JSON document on the scheduler host as a
    client of the cluster (``client`` is connected when it runs)."""

    def call(body, timeout=120):
        source = (
            "import json, sys, time\n"
            "from distributed import Client\n"
            f"deadline = time.time() + {timeout}\n"
            "while True:\n"
            "    try:\n"
            "        client = Client(sys.argv[1], timeout=10)\n"
            "        break\n"
            "    except OSError:\n"
            "        if time.time() > deadline:\n"
            "            raise\n"
            "        time.sleep(1)\n"
            + textwrap.dedent(body)
        )
        result = run_python(scheduler, source, scheduler_address)
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    return call


def workers_script(count, timeout):
    """Snippet for dask_json: wait until ``count`` workers are running, print them."""
    return f"""
client.wait_for_workers({count}, timeout={timeout})
deadline = time.time() + {timeout}
while True:
    # Asked now: Client.scheduler_info() may return a cached copy listing no worker.
    workers = [dict(w, address=a) for a, w in client.sync(client.scheduler.identity, n_workers=-1)["workers"].items()]
    running = [w for w in workers if w.get("status") == "running"]
    if len(running) >= {count} or time.time() > deadline:
        break
    time.sleep(0.5)
keys = ("name", "address", "status", "nthreads", "memory_limit")
print(json.dumps(sorted(({{k: w.get(k) for k in keys}} for w in workers), key=lambda w: w["name"])))
"""


def run_site(*args):
    return run_playbook("site.yml", *args)
