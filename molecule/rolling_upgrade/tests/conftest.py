"""Fixtures of the rolling-upgrade verify step: the hosts (docker backend, same
names as the inventory) and the long-lived client session."""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from client_session import Session  # noqa: E402
from helpers import get_host  # noqa: E402

SCHEDULER = "dask-upgrade-scheduler"
WORKERS = ["dask-upgrade-worker-1", "dask-upgrade-worker-2", "dask-upgrade-worker-3"]


@pytest.fixture
def session(request):
    """Start a client session named after the test; call with the number of workers."""
    return lambda workers=len(WORKERS): Session(SCHEDULER, re.sub(r"\W", "_", request.node.name), workers)


def dask_versions():
    """Dask release each worker's unit runs, read from the hosts."""
    return {w: get_host(w).check_output("readlink /opt/dask/venvs/current").rsplit("/", 1)[-1] for w in WORKERS}
