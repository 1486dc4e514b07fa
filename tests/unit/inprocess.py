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
import time
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


def wait_until(predicate, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def slow_result(seconds):
    time.sleep(seconds)
    return b"computed while retiring" * 1000


class Data:
    """A client of the test cluster that scatters blobs to one worker and reads them back."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.run = cluster.dask_loop.run

        from distributed import Client

        async def connect():
            return await Client(cluster.address, asynchronous=True, security=cluster.security)

        self.client = self.run(connect())
        self.futures = []
        self.blobs = []

    def scatter(self, address, count=20, size=50000):
        """Put ``count`` random blobs on the worker at ``address`` only, plus one result computed there."""
        blobs = [os.urandom(size) for dummy in range(count)]

        async def scatter():
            # The client belongs to the background loop: use it there only.
            futures = await self.client.scatter(blobs, workers=[address])
            computed = self.client.submit(bytes.upper, futures[0], workers=[address], allow_other_workers=False)
            await computed
            return futures + [computed]

        self.futures += self.run(scatter())
        self.blobs += blobs + [blobs[0].upper()]

    def start_slow(self, worker, seconds):
        """Start on ``worker`` a task that returns its result after ``seconds``; return when it runs."""
        async def submit():
            return self.client.submit(
                slow_result, seconds, pure=False, workers=[worker.address], allow_other_workers=False
            )

        future = self.run(submit())
        self.futures.append(future)
        self.blobs.append(slow_result(0))

        def running():
            async def read():
                ts = worker.state.tasks.get(future.key)
                return ts is not None and ts.state == "executing"

            return self.run(read())

        wait_until(running, what="the slow task to start")
        return future

    def wait(self, future):
        async def wait():
            await future

        self.run(wait())

    def holders(self):
        """{key: set of worker names} as the scheduler has it."""
        async def read():
            return dict(
                (f.key, set(str(ws.name) for ws in self.cluster.scheduler.tasks[f.key].who_has or ()))
                for f in self.futures
            )

        return self.run(read())

    def intact(self):
        """Every key still gathers, byte-identical."""
        async def gather():
            return await self.client.gather(self.futures)

        return self.run(gather()) == self.blobs

    def close(self):
        async def close():
            await self.client.close()

        self.run(close())
