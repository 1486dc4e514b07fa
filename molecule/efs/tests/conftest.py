"""Fixtures of the EFS scenario: the NFS server standing in for EFS, the Dask hosts
that define the mount, and runs of the scenario's converge playbook."""

import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from helpers import PlaybookRun, get_host  # noqa: E402

SERVER = "efs-server"
DASK_HOSTS = ["efs-dask-scheduler", "efs-dask-worker"]
EXPORT = "/srv/efs"
MOUNT_POINT = "/shared"
CONVERGE = os.path.join(os.path.dirname(__file__), "..", "converge.yml")


@pytest.fixture(scope="session")
def server():
    return get_host(SERVER)


@pytest.fixture(scope="session", params=DASK_HOSTS)
def dask_host(request):
    return get_host(request.param)


def run_converge(*args):
    """Run the scenario's converge playbook (the role by FQCN) against its inventory;
    ``changed`` maps each host of the recap to its changed count."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    start = time.monotonic()
    run = subprocess.run(
        ["ansible-playbook", "-i", inventory, CONVERGE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        check=False,
    )
    output = run.stdout + run.stderr
    recap = output.split("PLAY RECAP")[-1]
    changed = {host: int(n) for host, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", recap, re.M)}
    return PlaybookRun(run.returncode, output, changed, time.monotonic() - start)
