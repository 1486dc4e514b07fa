#!/usr/bin/env python
"""How long one dataplatform.dask.cluster_health check takes, by cluster size.

Starts an in-process scheduler with 1, 10 and 50 workers (real Dask servers on an event
loop in a background thread, talking over TCP on 127.0.0.1) and times the module's check
(identity + versions + a versions broadcast to every worker, then judging) several times.
Python start-up and imports do not depend on the cluster: the last line times a whole
module run (a new Python running the module file, as Ansible does after copying it) once
per size for comparison.

Usage: python scripts/bench_cluster_health.py [--runs 9] [--sizes 1,10,50]
Run it with a Python that has dask[distributed] and ansible-core (the repo's .venv).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
from inprocess import REPO, DaskLoop, collections_root, import_collection  # noqa: E402

import_collection()

from distributed import Scheduler, Worker  # noqa: E402

from ansible_collections.dataplatform.dask.plugins.module_utils._dask_health import check_cluster  # noqa: E402


async def start_cluster(n_workers, directory):
    scheduler = await Scheduler(host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0")
    workers = await asyncio.gather(*[
        Worker(scheduler.address, name="w%02d" % i, host="127.0.0.1", nthreads=1, local_directory=directory)
        for i in range(n_workers)
    ])
    return scheduler, list(workers)


async def stop_cluster(scheduler, workers):
    await asyncio.gather(*[w.close() for w in workers])
    await scheduler.close()


def module_run(address, n_workers, directory):
    """Seconds for a new Python to run the module file on its arguments file."""
    args_file = os.path.join(directory, "args.json")
    with open(args_file, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": {"scheduler_address": address, "min_workers": n_workers}}, f)
    module = REPO / "plugins" / "modules" / "cluster_health.py"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(collections_root()), os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(module), args_file], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit("module run failed: %s %s" % (proc.stdout, proc.stderr))
    return elapsed


def bench(background, n_workers, runs, directory):
    scheduler, workers = background.run(start_cluster(n_workers, directory))
    try:
        times = []
        for dummy in range(runs):
            started = time.perf_counter()
            result = asyncio.run(check_cluster(scheduler.address, {}, 10, {"min_workers": n_workers}))
            times.append(time.perf_counter() - started)
            if not result["healthy"]:
                raise SystemExit("cluster of %d workers judged unhealthy: %s" % (n_workers, result["problems"]))
        return times, module_run(scheduler.address, n_workers, directory)
    finally:
        # Workers closing all at once log heartbeat errors that say nothing about the check.
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        background.run(stop_cluster(scheduler, workers))
        logging.getLogger("distributed").setLevel(logging.WARNING)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--sizes", default="1,10,50")
    args = parser.parse_args()
    # Dask logs every worker start at INFO: keep the table readable.
    logging.getLogger("distributed").setLevel(logging.WARNING)

    background = DaskLoop()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-health-") as directory:
        for size in [int(s) for s in args.sizes.split(",")]:
            times, whole = bench(background, size, args.runs, directory)
            rows.append((size, statistics.median(times), min(times), max(times), whole))
    background.close()

    print("cluster_health: one check, %d runs per size; whole module run once (seconds)" % args.runs)
    print("%8s %10s %10s %10s %14s" % ("workers", "median", "min", "max", "module run"))
    for row in rows:
        print("%8d %10.4f %10.4f %10.4f %14.2f" % row)


if __name__ == "__main__":
    main()
