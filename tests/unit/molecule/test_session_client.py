# -*- coding: utf-8 -*-
"""molecule/shared/session_client.py counts the workers the scheduler has, at every sample.

Client.scheduler_info() returns the client's cached copy, which the client's own periodic
poll replaces with one that lists no worker: sampled twice a second through a rolling
upgrade, it made the rolling_upgrade scenario see "0 running workers" in about one run in
three. Here the poll runs every 5 ms, so a reader of the cache misses workers within a
few thousand reads (12 of 2000 when this test was written)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dask
from distributed import Client, LocalCluster

SPEC = importlib.util.spec_from_file_location(
    "session_client", Path(__file__).resolve().parents[3] / "molecule" / "shared" / "session_client.py")
session_client = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(session_client)


def test_every_sample_sees_every_worker_while_the_client_polls_the_scheduler():
    with dask.config.set({"distributed.client.scheduler-info-interval": "5ms"}):
        with LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
            client.wait_for_workers(2, timeout=30)
            counts = [session_client.running_workers(client) for dummy in range(2000)]
    assert set(counts) == {2}
