"""Every change a platform engineer makes reaches the running cluster without losing
results: site.yml stages it (nothing restarted, the restart reported pending), then
rolling_upgrade.yml restarts each worker in its batch after retiring it. Runs after
test_rolling_upgrade.py, on the collection's release everywhere; tests run in file order."""

import json
import os
import subprocess

from conftest import HOSTS, SCHEDULER, WORKERS, health, running_environment, running_worker_facts
from helpers import PROJECT, change_group_vars, current_environment, flat, get_host, main_pids, run_playbook

WORKER_UNIT = "dask-worker.service"
EXTRA_PACKAGE = "tabulate==0.9.0"
NOFILE = 16384


def stage(change, session, pending_on=tuple(WORKERS)):
    """Edit the group_vars, run site.yml under a client session: nothing restarts, nothing is
    lost, and health.yml reports the restart pending on exactly pending_on."""
    client = session()
    before = main_pids([SCHEDULER], "dask-scheduler.service") | main_pids(WORKERS, WORKER_UNIT)
    change_group_vars(**change)
    run = run_playbook("site.yml")
    assert run.rc == 0, run.output[-4000:]
    assert main_pids([SCHEDULER], "dask-scheduler.service") | main_pids(WORKERS, WORKER_UNIT) == before
    report = client.finish()
    assert report["lost"] == {} and report["failed"] == 0 and report["removals"] == [], report
    assert "Apply it without losing results: ansible-playbook -i <inventory> dataplatform.dask.rolling_upgrade" in flat(run.output)
    run, pending = health()
    assert run.rc == 0, run.output[-3000:]
    assert sorted(pending) == sorted(pending_on), run.output[-3000:]
    return pending


def roll(session, *args):
    """rolling_upgrade.yml under a client session: every worker restarted in its batch after
    its retirement, nothing lost, no task failed, nothing pending on the workers afterwards."""
    client = session()
    before = main_pids(WORKERS, WORKER_UNIT)
    run = run_playbook("rolling_upgrade.yml", *args)
    report = client.finish()
    assert run.rc == 0, run.output[-4000:]
    assert report["lost"] == {} and report["failed"] == 0 and report["completed"] > 0, report
    assert len(report["removals"]) == len(WORKERS), report["removals"]
    for removal in report["removals"]:
        assert removal["lost-computed-tasks"] == [] and removal["lost-scattered-tasks"] == [], removal
    assert report["min_running_workers"] >= len(WORKERS) - 1, report["min_running_workers"]
    after = main_pids(WORKERS, WORKER_UNIT)
    assert all(after[w] != before[w] for w in WORKERS), (before, after)
    run, pending = health()
    assert run.rc == 0, run.output[-3000:]
    assert not set(pending) & set(WORKERS), pending
    return pending


def test_a_worker_setting_and_a_unit_setting_are_staged_then_applied_drained(session):
    # (Open files below the containers' own limit, which systemd would clamp to.)
    before = running_worker_facts()
    assert {f["memory_target"] for f in before.values()} == {0.6}
    assert {f["nofile"] for f in before.values()} != {NOFILE}
    pending = stage({"dask_worker_memory_target": 0.55, "dask_worker_limit_nofile": NOFILE}, session)
    assert set(map(tuple, pending.values())) == {
        ("/etc/systemd/system/dask-worker.service", "/etc/dask/50-worker.yaml")}, pending
    assert running_worker_facts() == before
    roll(session)
    after = running_worker_facts()
    assert {f["memory_target"] for f in after.values()} == {0.55}
    assert {f["nofile"] for f in after.values()} == {NOFILE}


def test_a_package_added_is_a_new_environment_staged_then_applied_drained(session):
    extra = {"dask_common_extra_packages": [EXTRA_PACKAGE]}
    build = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", os.path.join(PROJECT, "playbooks", "wheelhouse.yml"),
         "-e", f"dask_common_wheelhouse_dir={PROJECT}/.cache/wheelhouse", "-e", json.dumps(extra)],
        capture_output=True, text=True, check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    old = {name: current_environment(get_host(name)) for name in HOSTS}

    pending = stage(extra, session, pending_on=HOSTS)
    for name in HOSTS:
        new = current_environment(get_host(name))
        # Same release, another environment: its own venv beside the running one.
        assert new != old[name] and new.split("-")[0] == old[name].split("-")[0], (old, new)
        assert pending[name] == [f"environment {new}"], pending
        assert get_host(name).file(f"/opt/dask/venvs/{old[name]}/bin/python").exists
    assert {f["tabulate"] for f in running_worker_facts().values()} == {None}

    roll(session)
    assert {f["tabulate"] for f in running_worker_facts().values()} == {"0.9.0"}
    # The scheduler still runs the environment without the package: a mismatch, reported.
    run, pending = health(consistent=True)
    assert run.rc != 0 and pending == {SCHEDULER: [f"environment {current_environment(get_host(SCHEDULER))}"]}
    for worker in WORKERS:
        assert f"{worker} has tabulate 0.9.0, expected None (as on the scheduler)" in flat(run.output), run.output[-3000:]

    # No client now: the scheduler is restarted in its drained window, and the cluster is one environment.
    run = run_playbook("rolling_upgrade.yml", "-e", "dask_upgrade_scheduler=true")
    assert run.rc == 0, run.output[-4000:]
    assert running_environment(SCHEDULER, "dask-scheduler.service") == current_environment(get_host(SCHEDULER))
    run, pending = health(consistent=True)
    assert run.rc == 0 and pending == {}, run.output[-3000:]


def test_negative_control_the_undrained_opt_out_loses_results(session):
    # Proves that stage() and roll() would see a loss: the lab's opt-out restarts at once.
    # One worker, as a lab would try it (three at once leave the session's stream of small
    # tasks waiting long after the workers are back).
    client = session()
    change_group_vars(dask_worker_memory_target=0.6)
    run = run_playbook("site.yml", "--limit", f"dask_schedulers,{WORKERS[0]}", "-e", "dask_worker_restart_undrained=true")
    assert run.rc == 0, run.output[-4000:]
    report = client.finish()
    assert report["lost"], report
    assert any(r["lost-scattered-tasks"] for r in report["removals"]), report["removals"]
    run, pending = health()
    assert run.rc == 0 and WORKERS[0] not in pending, run.output[-3000:]
