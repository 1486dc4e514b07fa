"""Bad input is refused with a message naming the fix, before anything changes
(runs first, against the converged cluster)."""

import os

import pytest
from conftest import run_site
from helpers import flat

# Each case runs only the plays of the hosts it concerns, to keep the suite short.
WORKERS_ONLY = ["--limit", "dask_workers"]
SCHEDULER_ONLY = ["--limit", "dask_schedulers"]
BAD_INPUTS = {
    "thresholds not increasing": (
        [*WORKERS_ONLY, "-e", "dask_worker_memory_target=0.75"],
        "Memory thresholds must satisfy 0 < target < spill < pause < terminate <= 1",
    ),
    "memory limit above the host's RAM": (
        [*WORKERS_ONLY, "-e", "dask_worker_memory_limit_mb=100000000"],
        "Set dask_worker_nthreads to 1 or more and dask_worker_memory_limit_mb between 256 and",
    ),
    "no threads": ([*WORKERS_ONLY, "-e", "dask_worker_nthreads=0"], "Set dask_worker_nthreads to 1 or more"),
    "wrong type": ([*WORKERS_ONLY, "-e", "dask_worker_nthreads=three"], "dask_worker_nthreads"),
    "unreachable scheduler": (
        [*WORKERS_ONLY, "-e", "dask_worker_scheduler_address=tls://127.0.0.1:1"],
        "The scheduler tls://127.0.0.1:1 did not answer",
    ),
    "no scheduler at all": (
        [*WORKERS_ONLY, "-e", "dask_worker_scheduler_group=nowhere"],
        "No scheduler address for this worker",
    ),
    "unknown Dask version": ([*SCHEDULER_ONLY, "-e", "dask_common_version=2099.1.0"], "No wheelhouse for Dask 2099.1.0"),
    "no Python for the venvs": ([*SCHEDULER_ONLY, "-e", "dask_common_python=/usr/bin/python2"], "/usr/bin/python2 on this host does not run"),
    "a worker host that is also the scheduler": (
        ["--inventory", os.path.join(os.path.dirname(__file__), "worker_as_scheduler.yml"), "--limit", "dask-worker-1"],
        "dask-worker-1 is in both dask_schedulers and dask_workers",
    ),
    "scheduler on all interfaces": ([*SCHEDULER_ONLY, "-e", "dask_scheduler_host=0.0.0.0"], "must be addresses of this host"),
    "a renewal window as long as the certificates' lifetime": (
        [*SCHEDULER_ONLY, "-e", "dask_common_tls_renew_days=400"],
        "dask_common_tls_renew_days (400) must be less than dask_common_tls_cert_days (365)",
    ),
    "an undrained restart that is not a boolean": (
        [*WORKERS_ONLY, "-e", "dask_worker_restart_undrained=sometimes"], "dask_worker_restart_undrained",
    ),
}


@pytest.mark.parametrize("extra_args, message", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_refused_and_changes_nothing(extra_args, message):
    run = run_site(*extra_args)
    assert run.rc != 0, run.output[-3000:]
    assert message in flat(run.output), run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]
