# -*- coding: utf-8 -*-
"""Support shared by the unit tests and scripts/bench_cluster_health.py: the collection
importable as ``ansible_collections.dataplatform.dask``, and an event loop in a thread
for in-process Dask servers.

The modules import ``ansible_collections.dataplatform.dask...``. Under ``ansible-test
units`` (or any checkout at ``.../ansible_collections/dataplatform/dask``) that already
works; otherwise the link ``.cache/collections/ansible_collections/dataplatform/dask`` ->
repository (made by the harness, or here when missing) makes it work from the root.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def collections_root():
    """A directory holding ansible_collections/dataplatform/dask -> this repository."""
    if REPO.parent.name == "dataplatform" and REPO.parent.parent.name == "ansible_collections":
        return REPO.parent.parent.parent
    root = REPO / ".cache" / "collections"
    link = root / "ansible_collections" / "dataplatform" / "dask"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(REPO, link)
    return root


def import_collection():
    root = str(collections_root())
    if root not in sys.path:
        sys.path.insert(0, root)


class DaskLoop:
    """An asyncio loop in a background thread. The code under test runs its own loop
    synchronously in the caller's thread (as a module does under Ansible), so the Dask
    servers must keep running somewhere else meanwhile."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dask-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro, timeout=120):
        """Run a coroutine on the background loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
