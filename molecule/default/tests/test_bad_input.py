"""Bad input is refused with a message naming the fix, before anything changes
(runs first, against the converged cluster)."""

import concurrent.futures
import glob
import json
import os
import shutil

import pytest
from conftest import SCHEDULER, run_site
from helpers import PROJECT, flat, get_host, run_playbook

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
    "a Python the wheelhouse was not built for": (
        [*SCHEDULER_ONLY, "-e", "dask_common_wheelhouse_python_version=3.12"],
        "/usr/bin/python3 on this host is Python 3.11, but the wheelhouse is built for Python 3.12",
    ),
    "a shared directory where nothing is mounted": (
        [*SCHEDULER_ONLY, "-e", "dask_common_shared_dir=/shared"],
        "dask_common_shared_dir is /shared, but no file system is mounted there on dask-scheduler",
    ),
    "access keys in the services' environment": (
        [*WORKERS_ONLY, "-e", '{"dask_common_service_environment": {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-secret"}}'],
        "dask_common_service_environment must not hold credentials (AWS_SECRET_ACCESS_KEY)",
    ),
    "an undrained restart that is not a boolean": (
        [*WORKERS_ONLY, "-e", "dask_worker_restart_undrained=sometimes"], "dask_worker_restart_undrained",
    ),
}


@pytest.fixture(scope="module")
def wheelhouse_with_a_short_lock(tmp_path_factory):
    """A copy of the controller's wheelhouse (links to its archives) whose locks lack pandas."""
    tmp_path = tmp_path_factory.mktemp("wheelhouse")
    for path in glob.glob(os.path.join(PROJECT, ".cache", "wheelhouse", "*")):
        target = tmp_path / os.path.basename(path)
        if path.endswith(".lock"):
            with open(path) as f:
                target.write_text("".join(line for line in f if not line.startswith("pandas==")))
        elif path.endswith(".tar"):
            os.symlink(path, target)
        else:
            shutil.copy(path, target)
    return tmp_path


# The maintenance lock of another operation, from another controller.
HELD_LOCK = "/run/lock/dataplatform-dask-test-held.lock"
HOLDER = {"user": "operator", "host": "other-controller", "pid": 4242, "operation": "rolling_upgrade",
          "started": "2026-12-01T10:00:00+00:00"}


@pytest.fixture(scope="module")
def refusals(wheelhouse_with_a_short_lock):
    """site.yml run with each bad input, several at once: each refuses before it changes
    anything, so the runs cannot disturb one another (a third of the time of one by one).
    Each has a maintenance lock file of its own: they would otherwise refuse one another."""
    get_host(SCHEDULER).check_output(f"echo '{json.dumps(HOLDER)}' > {HELD_LOCK}")
    cases = {**{case: extra_args for case, (extra_args, dummy) in BAD_INPUTS.items()},
             "short lock": [*SCHEDULER_ONLY, "-e", f"dask_common_wheelhouse_dir={wheelhouse_with_a_short_lock}"]}
    lock_files = {case: f"/run/lock/dataplatform-dask-test-{n}.lock" for n, case in enumerate(cases)}
    cases["held lock"], lock_files["held lock"] = [], HELD_LOCK
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runs = {case: pool.submit(run_site, *extra_args, "-e", f"dask_common_lock_file={lock_files[case]}")
                for case, extra_args in cases.items()}
    return {case: run.result() for case, run in runs.items()}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_changes_nothing(refusals, case):
    run, message = refusals[case], BAD_INPUTS[case][1]
    assert run.rc != 0, run.output[-3000:]
    assert message in flat(run.output), run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]


def test_secret_in_the_services_environment_is_not_printed(refusals):
    run = refusals["access keys in the services' environment"]
    assert run.rc != 0 and "wJalrXUtnFEMI-secret" not in run.output, run.output[-3000:]


def test_a_run_while_another_operation_holds_the_lock_is_refused(refusals):
    run = refusals["held lock"]
    assert run.rc != 0, run.output[-3000:]
    assert ("Another operation holds the maintenance lock of this cluster (dask-scheduler:/run/lock/dataplatform-dask-"
            "test-held.lock): rolling_upgrade run by operator on other-controller (process 4242), since "
            "2026-12-01T10:00:00+00:00. Nothing was changed.") in flat(run.output), run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]
    assert json.loads(get_host(SCHEDULER).file(HELD_LOCK).content_string) == HOLDER
    # health.yml names the holder (and takes no lock: it only reads).
    run = run_playbook("health.yml", "-e", f"dask_common_lock_file={HELD_LOCK}")
    assert run.rc == 0, run.output[-3000:]
    assert ("Maintenance lock: held by rolling_upgrade, run by operator on other-controller (process 4242) since "
            "2026-12-01T10:00:00+00:00.") in flat(run.output), run.output[-3000:]


def test_a_lock_that_lacks_a_package_is_refused(refusals):
    run = refusals["short lock"]
    assert run.rc != 0, run.output[-3000:]
    assert "does not hold what the hosts need: pandas is not in the lock" in flat(run.output), run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]
