"""Every kind of change a platform engineer makes, at once: a new release, a package
added, a worker setting and a unit setting. site.yml stages them (nothing restarted,
the restart reported pending), then playbooks/rolling_upgrade.yml restarts each worker
in its batch after retiring it, while a client keeps its results and keeps computing.
One cycle for all four keeps the suite short; each is checked on its own, in the running
processes. Tests run in file order."""

import json
import os
import re
import subprocess
import time

from conftest import HOSTS, SCHEDULER, WORKERS, dask_versions, health, running_environment, running_worker_facts
from helpers import (PROJECT, change_group_vars, current_environment, flat, get_host, group_vars_file, main_pids,
                     run_playbook)

OLD = os.environ["DASK_UPGRADE_FROM_VERSION"]
with open(os.path.join(PROJECT, "roles", "dask_common", "defaults", "main.yml")) as defaults:
    NEW = re.search(r'^dask_common_version: "(.+)"$', defaults.read(), re.M).group(1)
EXTRA_PACKAGES = ["tabulate==0.9.0"]
# Open files below the containers' own limit (20000 here), which systemd would clamp to.
NOFILE = 16384
CHANGES = {"dask_common_version": NEW, "dask_common_extra_packages": EXTRA_PACKAGES,
           "dask_worker_memory_target": 0.55, "dask_worker_limit_nofile": NOFILE}


def wait_until_healthy(timeout=120):
    # Between tests the scheduler may still run the old release.
    args = ("-e", "dask_health_require_consistent_versions=false")
    deadline = time.time() + timeout
    run = run_playbook("health.yml", *args)
    while run.rc != 0 and time.time() < deadline:
        time.sleep(2)
        run = run_playbook("health.yml", *args)
    assert run.rc == 0, run.output[-2000:]


def test_negative_control_a_restart_without_retiring_loses_data(session):
    # Proves the checks below can fail: what the playbook exists to prevent.
    client = session()
    get_host(WORKERS[0]).check_output("systemctl restart dask-worker.service")
    wait_until_healthy()
    report = client.finish()
    assert report["lost"], report
    assert any(r["lost-scattered-tasks"] for r in report["removals"]), report["removals"]


def test_site_yml_stages_every_change_without_restarting_anything(session):
    assert set(dask_versions().values()) == {OLD}
    facts = running_worker_facts()
    assert {(f["memory_target"], f["tabulate"]) for f in facts.values()} == {(0.6, None)}, facts
    assert NOFILE not in {f["nofile"] for f in facts.values()}, facts
    client = session()
    schedulers, workers = main_pids([SCHEDULER], "dask-scheduler.service"), main_pids(WORKERS, "dask-worker.service")

    change_group_vars(**CHANGES)
    # The wheelhouse of the new environment, as users build it: with the inventory's variables.
    build = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", os.path.join(PROJECT, "playbooks", "wheelhouse.yml"),
         "-e", f"@{group_vars_file()}"],
        capture_output=True, text=True, check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    run = run_playbook("site.yml")
    assert run.rc == 0, run.output[-4000:]
    assert main_pids([SCHEDULER], "dask-scheduler.service") == schedulers
    assert main_pids(WORKERS, "dask-worker.service") == workers
    assert running_worker_facts() == facts
    # Staged beside the running venv; the processes still run the old one.
    for name in HOSTS:
        assert current_environment(get_host(name)).startswith(NEW + "-")
        assert running_environment(name, "dask-scheduler.service" if name == SCHEDULER else "dask-worker.service").startswith(OLD + "-")
    assert "Restart pending (staged, nothing restarted)" in flat(run.output)
    report = client.finish()
    assert report["lost"] == {} and report["failed"] == 0 and report["removals"] == [], report

    run, pending = health()
    assert run.rc == 0, run.output[-3000:]
    environment = f"environment {current_environment(get_host(SCHEDULER))}"
    assert pending == {SCHEDULER: [environment], **{
        w: [environment, "/etc/systemd/system/dask-worker.service", "/etc/dask/50-worker.yaml"] for w in WORKERS}}, pending


def test_rolling_upgrade_keeps_every_result_and_keeps_computing(session):
    assert set(dask_versions().values()) == {OLD}
    client = session()
    run = run_playbook("rolling_upgrade.yml")
    report = client.finish()
    assert run.rc == 0, run.output[-4000:]

    assert report["lost"] == {}, report["lost"]
    assert report["removals"], "the workers were never removed: nothing was upgraded"
    for removal in report["removals"]:
        # Dask marks a removal "expected" only when the scheduler itself removes the
        # worker; a drained worker stopped by systemd says expected=False. What matters
        # is that it held nothing of its own when it went. (Tasks queued on it but not
        # started go to other workers: "processing-tasks" may name them; none may fail.)
        assert removal["lost-computed-tasks"] == [] and removal["lost-scattered-tasks"] == [], removal
    assert report["failed"] == 0 and report["completed"] > 0, report
    assert report["min_running_workers"] >= len(WORKERS) - 1, report["min_running_workers"]
    assert report["worker_versions"] == [NEW] * len(WORKERS)
    assert set(dask_versions().values()) == {NEW}
    facts = running_worker_facts()
    assert {(f["memory_target"], f["nofile"], f["tabulate"]) for f in facts.values()} == {(0.55, NOFILE, "0.9.0")}, facts
    # The scheduler keeps its restart pending (it is restarted only when asked, drained),
    # and so still lacks the package the workers have now: a mismatch, reported.
    run, pending = health(consistent=True)
    assert run.rc != 0 and sorted(pending) == [SCHEDULER], run.output[-3000:]
    for worker in WORKERS:
        assert f"{worker} has tabulate 0.9.0, expected None (as on the scheduler)" in flat(run.output), run.output[-3000:]
    # The old environment is kept on the workers for a roll back, and nothing else.
    for name in WORKERS:
        venvs = get_host(name).check_output("ls /opt/dask/venvs").split()
        assert sorted(v.split("-", 1)[0] for v in venvs) == [OLD, NEW, "current"], venvs


def test_a_rerun_skips_workers_already_upgraded():
    run = run_playbook("rolling_upgrade.yml")
    assert run.rc == 0, run.output[-4000:]
    recap = run.output.split("PLAY RECAP")[-1]
    assert set(re.findall(r"changed=(\d+)", recap)) == {"0"}, recap
    assert "Retire the batch" in run.output and "skipping" in run.output


def test_os_updates_restart_every_worker_without_losing_results(session):
    client = session()
    run = run_playbook(
        "rolling_upgrade.yml", "-e", "dask_upgrade_os_packages=true"
    )
    report = client.finish()
    assert run.rc == 0, run.output[-4000:]
    assert "Apply the OS package updates to the drained worker" in run.output
    assert len(report["removals"]) == len(WORKERS), report["removals"]
    for removal in report["removals"]:
        assert removal["lost-computed-tasks"] == [] and removal["lost-scattered-tasks"] == [], removal
    assert report["lost"] == {} and report["failed"] == 0, report
    assert report["min_running_workers"] >= len(WORKERS) - 1


def test_refuses_to_retire_the_last_worker_and_stops_before_stopping_anything(session):
    others = WORKERS[1:]
    for name in others:
        get_host(name).check_output("systemctl stop dask-worker.service")
    try:
        client = session(workers=1)
        run = run_playbook(
            "rolling_upgrade.yml",
            "--limit", f"dask_schedulers,{WORKERS[0]}",
            # The release it already runs, plus OS updates: the worker must be drained.
            "-e", f"dask_common_version={NEW}",
            "-e", "dask_upgrade_os_packages=true",
            "-e", json.dumps({"dask_cluster_worker_names": [WORKERS[0]]}),
        )
        assert run.rc != 0, run.output[-4000:]
        assert WORKERS[0] in flat(run.output) and "could not" in flat(run.output).lower(), run.output[-4000:]
        host = get_host(WORKERS[0])
        assert host.service("dask-worker.service").is_running
        assert running_environment(WORKERS[0], "dask-worker.service").startswith(NEW + "-")
        report = client.finish()
        assert report["lost"] == {}, report["lost"]
        assert report["failed"] == 0
    finally:
        for name in others:
            get_host(name).check_output("systemctl start dask-worker.service")
        wait_until_healthy()


def test_the_scheduler_is_not_restarted_while_a_client_is_connected(session):
    client = session()
    scheduler = get_host(SCHEDULER)
    pid = scheduler.service("dask-scheduler.service").systemd_properties["MainPID"]
    run = run_playbook(
        "rolling_upgrade.yml", "-e", "dask_upgrade_scheduler=true", "-e", "dask_scheduler_drain_timeout=10",
    )
    assert run.rc != 0
    assert "The scheduler was not drained within 10 s (The scheduler still holds" in flat(run.output), run.output[-3000:]
    assert scheduler.service("dask-scheduler.service").systemd_properties["MainPID"] == pid
    report = client.finish()
    assert report["lost"] == {} and report["failed"] == 0, report


def test_the_scheduler_is_upgraded_last_in_a_drained_window():
    assert running_environment(SCHEDULER, "dask-scheduler.service").startswith(OLD + "-")
    run = run_playbook("rolling_upgrade.yml", "-e", "dask_upgrade_scheduler=true")
    assert run.rc == 0, run.output[-4000:]
    assert running_environment(SCHEDULER, "dask-scheduler.service") == current_environment(get_host(SCHEDULER))
    assert current_environment(get_host(SCHEDULER)).startswith(NEW + "-")
    # The last step waited until every worker was back on one consistent release.
    run, pending = health(consistent=True)
    assert run.rc == 0, run.output[-3000:]
    assert f"{len(WORKERS)} worker(s) registered and running" in run.output
    assert pending == {} and "No restart pending." in run.output


def test_the_tls_opt_out_runs_plain_tcp_without_tls_files():
    for host in [get_host(SCHEDULER)] + [get_host(w) for w in WORKERS]:
        assert not host.file("/etc/dask/20-tls.yaml").exists
        assert not host.file("/etc/dask/tls").exists
    # The modules reach the scheduler without TLS options; the workers advertise tcp://.
    run = run_playbook("health.yml")
    assert run.rc == 0, run.output[-3000:]
    for worker in WORKERS:
        assert re.search(rf"{worker}\s+running\s+.*\stcp://", run.output), run.output[-3000:]


def test_negative_control_the_undrained_opt_out_loses_results(session):
    # Proves that the checks above would see a loss: the lab's opt-out restarts at once.
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
