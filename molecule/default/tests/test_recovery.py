"""Failures the units must survive without an operator (runs after test_cluster)."""

import time

from conftest import SCHEDULER, WORKERS, workers_script
from helpers import flat, get_host, run_playbook


def main_pid(host, unit):
    return int(host.service(unit).systemd_properties["MainPID"])


def wait_for_new_main_pid(host, unit, old, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        pid = main_pid(host, unit)
        if pid not in (0, old) and host.service(unit).is_running:
            return pid
        time.sleep(1)
    raise AssertionError(f"{unit} was not restarted within {timeout}s")


def test_killed_worker_process_is_restarted_by_its_nanny(dask_json):
    host = get_host(WORKERS[0])
    nanny = main_pid(host, "dask-worker.service")
    before = {w["name"]: w["address"] for w in dask_json(workers_script(len(WORKERS), 60))}
    host.check_output(f"pkill -KILL --parent {nanny} -f 'multiprocessing.spawn'")
    deadline = time.time() + 60
    while time.time() < deadline:
        after = {w["name"]: w["address"] for w in dask_json(workers_script(len(WORKERS), 60))}
        if after.get(WORKERS[0]) not in (None, before[WORKERS[0]]):
            break
        time.sleep(1)
    assert after[WORKERS[0]] != before[WORKERS[0]], "the worker did not come back with a new process"
    assert main_pid(host, "dask-worker.service") == nanny  # the nanny, not systemd, restarted it


def test_sigkill_of_the_whole_worker_unit_is_restarted_by_systemd(dask_json):
    host = get_host(WORKERS[1])
    old = main_pid(host, "dask-worker.service")
    host.check_output("systemctl kill --signal=KILL dask-worker.service")
    wait_for_new_main_pid(host, "dask-worker.service", old)
    workers = dask_json(workers_script(len(WORKERS), 90))
    assert [w["name"] for w in workers] == WORKERS
    assert all(w["status"] == "running" for w in workers)


def test_workers_come_back_after_a_scheduler_restart(scheduler, dask_json):
    old_workers = [main_pid(get_host(w), "dask-worker.service") for w in WORKERS]
    scheduler.check_output("systemctl restart dask-scheduler.service")
    workers = dask_json(workers_script(len(WORKERS), 120), timeout=120)
    assert [w["name"] for w in workers] == WORKERS
    assert all(w["status"] == "running" for w in workers)
    # They came back because they exited with the scheduler and systemd restarted them.
    assert [main_pid(get_host(w), "dask-worker.service") for w in WORKERS] != old_workers


def test_health_playbook_names_a_stopped_worker_and_site_brings_it_back():
    host = get_host(WORKERS[1])
    host.check_output("systemctl stop dask-worker.service")
    run = run_playbook("health.yml")
    assert run.rc != 0
    assert f"Expected workers not registered with the scheduler: {WORKERS[1]}" in flat(run.output)
    # The deployment puts it back and waits until it is registered again; its controller
    # also breaks the maintenance lock a dead controller left, as asked, and releases it.
    lock = get_host(SCHEDULER).file("/run/lock/dataplatform-dask.lock")
    get_host(SCHEDULER).check_output(
        "echo '{\"user\": \"operator\", \"host\": \"dead-controller\", \"pid\": 4242, \"operation\": \"scale\", "
        "\"started\": \"2026-12-01T10:00:00+00:00\"}' > /run/lock/dataplatform-dask.lock")
    try:
        run = run_playbook("site.yml", "-e", "dask_common_lock_break=true")
        released = not lock.exists
    finally:
        # Whatever happened, the later tests' runs must not meet this lock.
        get_host(SCHEDULER).run("rm -f /run/lock/dataplatform-dask.lock")
    assert run.rc == 0, run.output[-3000:]
    assert ("Taking over the maintenance lock of scale, started 2026-12-01T10:00:00+00:00 by operator on "
            "dead-controller (broken on request)") in flat(run.output), run.output[-3000:]
    assert released
    assert host.service("dask-worker.service").is_running
    run = run_playbook("health.yml")
    assert run.rc == 0, run.output[-3000:]
