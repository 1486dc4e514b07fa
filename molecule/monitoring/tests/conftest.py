"""Fixtures of the monitoring scenario: the hosts, the Prometheus server's HTTP API and the
cluster as the collection's cluster_health module reads it, all from the controller."""

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from helpers import get_host

SCHEDULER = "dask-mon-scheduler"
WORKERS = ["dask-mon-worker-1", "dask-mon-worker-2"]
PROMETHEUS = "dask-mon-prometheus"
MOTO = "dask-mon-moto"
DASK_PYTHON = "/opt/dask/venvs/current/bin/python"


def ip_of(name):
    return get_host(name).check_output("hostname -I").split()[0]


def wait_until(probe, timeout, interval=2.0, what="the condition"):
    """Call probe() until it returns a truthy value; fail with the last value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            break
        time.sleep(interval)
    assert value, f"{what} did not hold within {timeout}s (last: {value!r})"
    return value


class Prometheus:
    def __init__(self, address):
        self.base = f"http://{address}:9090"

    def get(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression):
        """An instant query: [(labels, float value), ...]."""
        return [(r["metric"], float(r["value"][1])) for r in self.get("/api/v1/query", query=expression)["result"]]


@pytest.fixture(scope="session")
def prometheus():
    return Prometheus(ip_of(PROMETHEUS))


def cluster_health():
    """The collection's cluster_health module, run on the scheduler host as the playbooks do."""
    address = f"tls://{ip_of(SCHEDULER)}:8786"
    args = {"scheduler_address": address, "tls_ca_file": "/etc/dask/tls/ca.pem",
            "tls_cert": "/etc/dask/tls/host.pem", "tls_key": "/etc/dask/tls/host.key"}
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    run = subprocess.run(
        ["ansible", "-i", inventory, SCHEDULER, "-m", "dataplatform.dask.cluster_health", "-a", json.dumps(args),
         "-e", f"ansible_python_interpreter={DASK_PYTHON}"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
             "ANSIBLE_STDOUT_CALLBACK": "json"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"][SCHEDULER]
