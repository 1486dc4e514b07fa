"""The deployed cluster behaves as configured: services, hardening, tuning,
addresses, a real computation, and a --check run that changes nothing."""

import json
import os
import re

import pytest
from conftest import DASK_PYTHON, SCHEDULER, WORKERS, private_address, run_python, run_site, workers_script
from helpers import PROJECT, get_host, run_playbook

MIB = 2**20
URLOPEN = "/usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())'"
UNITS = {SCHEDULER: "dask-scheduler.service", **{w: "dask-worker.service" for w in WORKERS}}


@pytest.mark.parametrize("name", list(UNITS))
def test_service_running_enabled_and_hardened(name):
    host = get_host(name)
    service = host.service(UNITS[name])
    assert service.is_running
    assert service.is_enabled
    props = service.systemd_properties
    assert props["User"] == "dask"
    assert props["Restart"] == "always"
    assert props["KillMode"] == "mixed"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["LimitNOFILE"] == "65536"
    assert props["TimeoutStopUSec"] == "30s"
    assert "/var/lib/dask" in props["ReadWritePaths"]


@pytest.mark.parametrize("name", list(UNITS))
def test_processes_run_as_dask(name):
    host = get_host(name)
    pid = host.service(UNITS[name]).systemd_properties["MainPID"]
    assert host.check_output(f"ps -o user= -p {pid}") == "dask"


def test_services_can_write_only_their_state_directories(dask_json):
    # Run the probe inside the services themselves: the worker processes (via the
    # nanny) and the scheduler, under the units' ProtectSystem/ProtectHome.
    outcome = dask_json(
        """
import os
def probe():
    result = {}
    for path in ("/opt/dask/probe", "/etc/dask/probe", "/root/probe", "/var/lib/dask/probe"):
        try:
            with open(path, "w") as f:
                f.write("x")
            os.remove(path)
            result[path] = "written"
        except OSError as e:
            result[path] = e.strerror
    return result
print(json.dumps({"scheduler": client.run_on_scheduler(probe), **client.run(probe)}))
"""
    )
    assert len(outcome) == 1 + len(WORKERS)
    for where, result in outcome.items():
        assert result["/opt/dask/probe"] == "Read-only file system", where
        assert result["/etc/dask/probe"] == "Read-only file system", where
        assert result["/root/probe"] in ("Read-only file system", "Permission denied"), where
        assert result["/var/lib/dask/probe"] == "written", where


# Docker's embedded DNS resolver listens inside every container; it is not ours.
DOCKER_DNS = "127.0.0.11"
EXPECTED_PORTS = {SCHEDULER: {"8786", "8787"}, **{w: {"8788"} for w in WORKERS}}


@pytest.mark.parametrize("name", list(UNITS))
def test_dask_listens_only_on_the_private_address(name):
    host = get_host(name)
    address = private_address(host)
    sockets = host.check_output("ss -Hltn")
    listening = [line.split()[3].rsplit(":", 1) for line in sockets.splitlines()]
    ours = [(ip, port) for ip, port in listening if ip != DOCKER_DNS]
    assert EXPECTED_PORTS[name] <= {port for ip, port in ours}, sockets
    assert {ip for ip, port in ours} == {address}, f"{name} listens beyond {address}:\n{sockets}"


def test_configuration_files_are_private_to_the_dask_group():
    host = get_host(SCHEDULER)
    for path in ("/etc/dask/10-common.yaml", "/etc/dask/50-scheduler.yaml"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "dask", 0o640)
    # One venv per environment: <release>-<id of the package list, platforms and Python>.
    assert re.fullmatch(r"/opt/dask/venvs/2026\.8\.0-[0-9a-f]{12}", host.file("/opt/dask/venvs/current").linked_to)


def test_workers_registered_with_configured_resources(dask_json):
    workers = dask_json(workers_script(len(WORKERS), 60))
    assert [w["name"] for w in workers] == WORKERS
    for w in workers:
        assert w["status"] == "running"
        assert w["nthreads"] == 2
        assert w["memory_limit"] == 2048 * MIB


def test_running_processes_use_the_reference_tuning(dask_json):
    tuning = dask_json(
        """
import dask
def read():
    return {k: dask.config.get(k) for k in (
        "distributed.scheduler.allowed-failures", "distributed.scheduler.work-stealing",
        "distributed.scheduler.work-stealing-interval", "distributed.scheduler.worker-ttl",
        "distributed.scheduler.bandwidth", "distributed.scheduler.idle-timeout",
        "distributed.admin.low-level-log-length", "distributed.worker.memory.target",
        "distributed.worker.memory.spill", "distributed.worker.memory.pause",
        "distributed.worker.memory.terminate")}
print(json.dumps({"scheduler": client.run_on_scheduler(read), "workers": client.run(read)}))
"""
    )
    scheduler = tuning["scheduler"]
    assert scheduler["distributed.scheduler.allowed-failures"] == 3
    assert scheduler["distributed.scheduler.work-stealing"] is True
    assert scheduler["distributed.scheduler.work-stealing-interval"] == "500ms"
    assert scheduler["distributed.scheduler.worker-ttl"] == "600s"
    assert scheduler["distributed.scheduler.bandwidth"] == 100_000_000
    assert scheduler["distributed.scheduler.idle-timeout"] is None
    assert scheduler["distributed.admin.low-level-log-length"] == 100_000
    assert len(tuning["workers"]) == len(WORKERS)
    for values in tuning["workers"].values():
        assert [values[f"distributed.worker.memory.{k}"] for k in ("target", "spill", "pause", "terminate")] == [
            0.6,
            0.7,
            0.8,
            0.95,
        ]


def test_a_computation_runs_on_both_workers(scheduler, scheduler_address):
    with open(os.path.join(PROJECT, "scripts", "demo_compute.py")) as f:
        result = run_python(scheduler, f.read(), scheduler_address, str(len(WORKERS)))
    assert result.rc == 0, result.stdout + result.stderr
    # A dataframe groupby checked against pandas, its partitions held by every worker.
    assert f"equal to pandas on the same data; partitions on {len(WORKERS)} workers" in result.stdout, result.stdout


def test_dashboard_answers_on_the_private_address(scheduler):
    address = private_address(scheduler)
    health = scheduler.check_output(f"{URLOPEN} http://{address}:8787/health")
    assert health == "ok"


def test_each_host_records_what_it_offers_and_the_workers_join_that_address(scheduler, scheduler_address, workers):
    """The scheduler's address is derived once, by its role, and recorded on its host (the
    local fact every other role and playbook reads); the workers' units use it."""
    recorded = json.loads(scheduler.file("/etc/ansible/facts.d/dask_scheduler.fact").content_string)
    address = private_address(scheduler)
    assert recorded["address"] == scheduler_address
    assert recorded["dashboard_url"] == f"http://{address}:8787"
    assert recorded["connection"] == {"scheduler_address": scheduler_address, "tls_ca_file": "/etc/dask/tls/ca.pem",
                                      "tls_cert": "/etc/dask/tls/host.pem", "tls_key": "/etc/dask/tls/host.key"}
    assert recorded["python"] == DASK_PYTHON
    for name, worker in zip(WORKERS, workers):
        unit = worker.file("/etc/systemd/system/dask-worker.service").content_string
        assert f"dask worker {scheduler_address} " in unit, unit
        own = json.loads(worker.file("/etc/ansible/facts.d/dask_worker.fact").content_string)
        assert own == {"name": name, "dashboard_url": f"http://{private_address(worker)}:8788"}


def test_check_mode_on_the_converged_cluster_changes_nothing():
    run = run_site("--check", "--diff")
    assert run.rc == 0, run.output[-3000:]
    assert run.changed == dict.fromkeys(UNITS, 0), run.output[-3000:]


def test_health_playbook_reports_every_worker():
    run = run_playbook("health.yml")
    assert run.rc == 0, run.output[-3000:]
    assert set(run.changed.values()) == {0}
    for worker in WORKERS:
        # The last figure: days left of the certificate the worker presents (issued for 365).
        assert re.search(rf"{worker}\s+running\s+2\s+2.0 GiB\s+2026.8.0\s+36\d\.\d\s+tls://", run.output), run.output[-3000:]
    assert f"Healthy: {len(WORKERS)} worker(s) registered and running." in run.output
    assert "Maintenance lock: free." in run.output
