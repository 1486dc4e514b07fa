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

from conftest import (DASK_PYTHON, HOSTS, SCHEDULER, WORKERS, dask_versions, health, running_environment, running_worker_facts,
                      scheduler_address, worker_statuses)
from helpers import (PROJECT, change_group_vars, current_environment, flat, get_host, group_vars_file, main_pids,
                     run_playbook, run_playbook_interrupted)

OLD = os.environ["DASK_UPGRADE_FROM_VERSION"]
with open(os.path.join(PROJECT, "roles", "dask_common", "defaults", "main.yml")) as defaults:
    NEW = re.search(r'^dask_common_version: "(.+)"$', defaults.read(), re.M).group(1)
EXTRA_PACKAGES = ["tabulate==0.9.0"]
# The client's long task on the first worker runs until this file exists on that host
# (in the worker's state directory, which its sandbox lets it read).
LONG_TASK_RELEASE = "/var/lib/dask/long-task-release"
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
    """The roll, interrupted in each state a batch passes through and re-run each time, as in a
    maintenance window: worker 1's retirement times out while it runs a long task (left retired,
    as Ctrl-C after the retirement leaves it), Ctrl-C right after worker 2 is stopped, Ctrl-C
    right after worker 3 is started. Each re-run finishes what the one before left."""
    assert set(dask_versions().values()) == {OLD}
    get_host(WORKERS[0]).check_output(f"rm -f {LONG_TASK_RELEASE}")
    client = session(long_task_until=LONG_TASK_RELEASE)

    run = run_playbook("rolling_upgrade.yml", "-e", "dask_worker_retire_timeout=5")
    assert run.rc != 0
    assert re.search(rf"Retired {WORKERS[0]} through the scheduler at \S+, but after 5(\.0)? s tasks were still "
                     r"executing on \S+; nothing was stopped\. Run again with a larger timeout", flat(run.output)), \
        run.output[-3000:]
    assert worker_statuses()[WORKERS[0]] == "closing_gracefully"
    assert dask_versions() == {w: OLD for w in WORKERS}
    # The long task ends now: the next run's retirement waits for it and moves its result.
    get_host(WORKERS[0]).check_output(f"touch {LONG_TASK_RELEASE}")

    run = run_playbook_interrupted("rolling_upgrade.yml", "Stop the drained worker", WORKERS[1])
    assert f"Left retired (retired again, then restarted): {WORKERS[0]}." in flat(run.output), run.output[-3000:]
    # The lock the failed run left on this controller is taken over, saying so.
    assert "Taking over the maintenance lock of rolling_upgrade" in flat(run.output), run.output[-3000:]
    assert "(that run is gone: an interrupted run, finished by this one)" in flat(run.output)
    # Ctrl-C lands within the next few tasks (skipped ones, then the start): almost always
    # before the start.
    stopped = not get_host(WORKERS[1]).service("dask-worker.service").is_running

    run = run_playbook_interrupted("rolling_upgrade.yml", "Start the worker on what is staged", WORKERS[2])
    if stopped:
        assert f"Not registered (started by site.yml if stopped, then waited for): {WORKERS[1]}." in \
            flat(run.output), run.output[-3000:]

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


# Holds HOLD_MB of results on each worker (2048 MB memory limit, pause at 0.8) until told to let go.
HOLDER = r"""
import json, os, sys, time
from distributed import Client

with Client(sys.argv[1], timeout=30) as client:
    client.wait_for_workers(3, timeout=120)
    workers = sorted(client.sync(client.scheduler.identity, n_workers=-1)["workers"].items(), key=lambda w: str(w[1]["name"]))
    held = [client.scatter(bytes([i]) * (HOLD_MB << 20), workers=[address]) for i, (address, dummy) in enumerate(workers)]
    open("/root/holder.ready", "w").close()
    while not os.path.exists("/root/holder.stop"):
        time.sleep(0.5)
    who_has = client.who_has(held)
    first_bytes = client.gather([client.submit(lambda b: b[:1], f) for f in held])
    print(json.dumps({"intact": first_bytes == [bytes([i]) for i in range(len(held))],
                      "holders": [len(who_has[f.key]) for f in held]}))
"""


def test_a_batch_size_that_leaves_no_worker_running_is_refused_before_anything():
    # The sizes 0, 3 and "two" are read by the batch_workers filter's unit tests; this run
    # shows that the playbook refuses what the filter reads as every worker.
    pids = main_pids(WORKERS, "dask-worker.service")
    run = run_playbook("rolling_upgrade.yml", "-e", "dask_upgrade_batch_size=100%")
    assert run.rc != 0
    assert ("dask_upgrade_batch_size is 100%, 3 of the 3 workers at once. Give a number from 1 to 2 "
            "or a percentage below 100%") in flat(run.output), run.output[-2000:]
    assert "PLAY [Deploy the Dask scheduler and workers]" not in run.output
    assert main_pids(WORKERS, "dask-worker.service") == pids


def test_a_batch_the_other_workers_have_no_room_for_is_refused_before_retiring():
    # 500 MiB on each worker: two leaving at once would put 1000 MiB on the third, which has
    # about 780 MiB of room below its pause threshold, less the margin. (More per worker
    # takes a receiving worker, which briefly holds two copies, near its nanny's limit.)
    scheduler = get_host(SCHEDULER)
    pids = main_pids(WORKERS, "dask-worker.service")
    scheduler.check_output("rm -f /root/holder.ready /root/holder.stop")
    scheduler.check_output(f"nohup {DASK_PYTHON} - {scheduler_address()} >/root/holder.out 2>&1 <<'EOF' &\n"
                           f"{HOLDER.replace('HOLD_MB', '500')}\nEOF")
    try:
        deadline = time.time() + 300
        while not scheduler.file("/root/holder.ready").exists:
            assert time.time() < deadline, scheduler.run("cat /root/holder.out").stdout
            time.sleep(1)
        run = run_playbook("rolling_upgrade.yml", "-e", "dask_upgrade_batch_size=2", "-e", "dask_upgrade_os_packages=true")
        assert run.rc != 0
        message = flat(run.output)
        assert re.search(rf"{WORKERS[0]}, {WORKERS[1]} hold 1000\.[0-9] MiB of results no other worker has, but the "
                         r"other running workers have room for [0-9.]+ [KMG]?i?B below their pause threshold \(0\.8 of "
                         rf"the memory limit, less a margin of 0\.1\): {WORKERS[2]} ", message), run.output[-3000:]
        assert "Nothing was retired" in message and "Apply the OS package updates" not in run.output
        assert main_pids(WORKERS, "dask-worker.service") == pids
        assert set(worker_statuses().values()) == {"running"}
    finally:
        scheduler.check_output("touch /root/holder.stop")
    deadline = time.time() + 120
    while not scheduler.run("grep -q intact /root/holder.out").succeeded:
        assert time.time() < deadline, scheduler.run("cat /root/holder.out").stdout
        time.sleep(1)
    assert json.loads(scheduler.check_output("tail -1 /root/holder.out")) == {"intact": True, "holders": [1, 1, 1]}


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
        )
        assert run.rc != 0, run.output[-4000:]
        # The stopped workers pass the preflight (as after an interrupted run); the
        # capacity check refuses the retirement: nowhere to put the results.
        assert re.search(rf"{WORKERS[0]} hold [0-9.]+ [KMG]?i?B of results no other worker has, but the other running "
                         r"workers have room for 0 B .*: no worker is running\. .*Nothing was retired", flat(run.output)), \
            run.output[-4000:]
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
