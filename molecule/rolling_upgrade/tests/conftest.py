"""Fixtures of the rolling-upgrade verify step: the hosts (docker backend, same
names as the inventory), the collection's playbooks, and the long-lived client."""

import json
import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from helpers import get_host  # noqa: E402

SCHEDULER = "dask-upgrade-scheduler"
WORKERS = ["dask-upgrade-worker-1", "dask-upgrade-worker-2", "dask-upgrade-worker-3"]
DASK_PYTHON = "/opt/dask/venvs/current/bin/python"
CLIENT = os.path.join(os.path.dirname(__file__), "upgrade_client.py")


class Session:
    """The upgrade client running on the scheduler host in the background."""

    def __init__(self, name, workers=len(WORKERS)):
        self.host = get_host(SCHEDULER)
        self.workdir = f"/root/{name}"
        self.host.check_output(f"rm -rf {self.workdir} && mkdir -p {self.workdir}")
        with open(CLIENT) as f:
            source = f.read()
        self.host.check_output(f"cat > {self.workdir}/client.py <<'EOF'\n{source}\nEOF")
        address = "tcp://" + self.host.check_output("hostname -I").split()[0] + ":8786"
        self.host.check_output(
            f"nohup {DASK_PYTHON} {self.workdir}/client.py {address} {self.workdir} {workers} "
            f">{self.workdir}/client.log 2>&1 &"
        )
        self._wait_for("ready", 180)

    def _wait_for(self, name, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.host.file(f"{self.workdir}/{name}").exists:
                return
            time.sleep(1)
        log = self.host.run(f"tail -50 {self.workdir}/client.log").stdout
        raise AssertionError(f"the client wrote no {name} within {timeout}s:\n{log}")

    def finish(self):
        self.host.check_output(f"touch {self.workdir}/stop")
        self._wait_for("result.json", 600)
        return json.loads(self.host.file(f"{self.workdir}/result.json").content_string)


@pytest.fixture
def session(request):
    """Start a client session named after the test; call with the number of workers."""
    return lambda workers=len(WORKERS): Session(re.sub(r"\W", "_", request.node.name), workers)


def dask_versions():
    """Dask release each worker's unit runs, read from the hosts."""
    return {w: get_host(w).check_output("readlink /opt/dask/venvs/current").rsplit("/", 1)[-1] for w in WORKERS}
