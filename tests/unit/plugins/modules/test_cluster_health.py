# -*- coding: utf-8 -*-
"""dataplatform.dask.cluster_health against real in-process Dask schedulers and workers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from ansible.module_utils.testing import patch_module_args

distributed = pytest.importorskip("distributed", reason="these tests run real Dask servers: install dask[distributed] (requirements.txt)")

from distributed import Worker  # noqa: E402
from distributed.core import Status  # noqa: E402

from ansible_collections.dataplatform.dask.plugins.modules import cluster_health  # noqa: E402


def run_module(capsys, **args):
    """Call the module's main() as Ansible would and return (failed, result)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            cluster_health.main()
    result = json.loads(capsys.readouterr().out)
    assert bool(exit_info.value.code) == bool(result.get("failed")), result
    return bool(result.get("failed")), result


class OldCloudpickleWorker(Worker):
    """A worker whose ``versions`` handler answers like one whose venv has cloudpickle 3.0.0.

    The scheduler calls it over the network through ``broadcast`` exactly as it calls a
    worker of another virtualenv; only the version it reports differs.
    """

    def versions(self, packages=None):
        answer = super().versions(packages)
        return dict(answer, packages=dict(answer["packages"], cloudpickle="3.0.0"))


class ExtraPackageWorker(Worker):
    """A worker whose venv also has ``tabulate`` 0.9.0, which the scheduler's lacks.

    Dask reports a package outside its own set only when asked for it by name, as the
    scheduler's ``broadcast`` does when the module names it.
    """

    def versions(self, packages=None):
        answer = super().versions(packages)
        if "tabulate" in (packages or ()):
            answer = dict(answer, packages=dict(answer["packages"], tabulate="0.9.0"))
        return answer


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthy_cluster(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")
    cluster.add_worker("w2")

    failed, result = run_module(
        capsys, scheduler_address=cluster.address, min_workers=2, expected_workers=["w1", "w2"],
    )

    assert not failed, result["msg"]
    assert result["healthy"] is True and result["changed"] is False
    assert result["worker_count"] == 2
    assert result["status_counts"] == {"running": 2}
    assert [w["name"] for w in result["workers"]] == ["w1", "w2"]
    assert result["scheduler"]["address"] == cluster.address
    assert result["scheduler"]["id"] == cluster.scheduler.id
    assert result["scheduler"]["versions"]["distributed"] == distributed.__version__
    for worker in result["workers"]:
        assert worker["status"] == "running" and worker["nthreads"] == 1
        assert worker["versions"]["dask"] == result["scheduler"]["versions"]["dask"]
    assert result["missing_workers"] == result["unexpected_workers"] == result["version_mismatches"] == []
    assert "healthy: 2 workers (running: 2)" in result["msg"]


def test_check_mode_reads_the_same(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")

    failed, result = run_module(capsys, scheduler_address=cluster.address, min_workers=1, _ansible_check_mode=True)

    assert not failed and result["changed"] is False and result["worker_count"] == 1


def test_too_few_workers_and_unexpected_worker(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")
    cluster.add_worker("stray")

    failed, result = run_module(capsys, scheduler_address=cluster.address, min_workers=3, expected_workers=["w1"])

    assert failed and result["healthy"] is False
    assert "Expected at least 3 workers in status running, found 2" in result["msg"]
    # A stray worker is reported but is not itself a problem: min_workers is the only one.
    assert result["unexpected_workers"] == ["stray"]
    assert len(result["problems"]) == 1


def test_waits_for_a_worker_that_joins_late(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")
    args = dict(scheduler_address=cluster.address, expected_workers=["w1", "w2"], min_workers=2)

    failed, result = run_module(capsys, **args)
    assert failed and result["missing_workers"] == ["w2"]
    assert "Expected workers not registered with the scheduler: w2 (registered: w1)" in result["msg"]

    cluster.add_worker_later("w2", delay=1.0)
    failed, result = run_module(capsys, wait=True, wait_timeout=20, poll_interval=0.2, **args)

    assert not failed, result["msg"]
    assert [w["name"] for w in result["workers"]] == ["w1", "w2"]
    assert 0.8 <= result["waited"] < 10


def test_missing_worker_fails_after_wait_timeout(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")

    started = time.monotonic()
    failed, result = run_module(
        capsys, scheduler_address=cluster.address, expected_workers=["w1", "w9"],
        wait=True, wait_timeout=1.5, poll_interval=0.2,
    )
    elapsed = time.monotonic() - started

    assert failed and result["missing_workers"] == ["w9"]
    assert "not healthy after waiting" in result["msg"] and "w9" in result["msg"]
    assert 1.2 <= elapsed < 4, elapsed


def test_unhealthy_status(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")
    w2 = cluster.add_worker("w2")

    async def pause():
        # What the worker's memory monitor does above the pause threshold; the worker
        # tells the scheduler about it. The real monitor is told not to pause, or its next
        # tick (every 100 ms) sees the low memory and resumes the worker.
        w2.memory_manager.memory_pause_fraction = False
        w2.status = Status.paused

    cluster.dask_loop.run(pause())
    deadline = time.monotonic() + 10
    while cluster.status_of("w2") != "paused" and time.monotonic() < deadline:
        time.sleep(0.05)

    failed, result = run_module(capsys, scheduler_address=cluster.address, expected_workers=["w1", "w2"])
    assert failed and result["unhealthy_workers"] == ["w2"]
    assert result["status_counts"] == {"running": 1, "paused": 1}
    assert "Workers not in a healthy status (running): w2 is paused." in result["msg"]

    failed, result = run_module(
        capsys, scheduler_address=cluster.address, expected_workers=["w1", "w2"],
        healthy_statuses=["running", "paused"],
    )
    assert not failed, result["msg"]


def test_unreachable_scheduler_fails_within_timeout(capsys):
    address = "tcp://127.0.0.1:%d" % free_port()  # nothing listens there

    started = time.monotonic()
    failed, result = run_module(capsys, scheduler_address=address, timeout=1)
    elapsed = time.monotonic() - started

    assert failed and result["healthy"] is False and result["workers"] == []
    assert "could not connect within 1.0 s" in result["msg"]
    assert address in result["msg"]
    assert elapsed < 1 + 1.5, elapsed


def test_port_that_never_answers_fails_within_timeout(capsys):
    # A listening socket that accepts connections (kernel backlog) but never speaks:
    # Dask's connect succeeds and its handshake would wait forever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = "tcp://127.0.0.1:%d" % silent.getsockname()[1]
        # Should the module hang, closing the socket resets its connection: the test then
        # fails on the message instead of blocking the suite.
        backstop = threading.Timer(10, silent.close)
        backstop.start()

        started = time.monotonic()
        try:
            failed, result = run_module(capsys, scheduler_address=address, timeout=1)
        finally:
            backstop.cancel()
        elapsed = time.monotonic() - started

    assert failed
    assert "no answer within 1.0 s" in result["msg"]
    assert elapsed < 1 + 1.5, elapsed


def test_inconsistent_worker_versions(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")
    cluster.add_worker("old", worker_class=OldCloudpickleWorker)

    failed, result = run_module(capsys, scheduler_address=cluster.address)

    assert failed
    current = result["scheduler"]["versions"]["cloudpickle"]
    assert result["version_mismatches"] == [
        {"worker": "old", "package": "cloudpickle", "expected": current, "found": "3.0.0", "reference": "scheduler"}
    ]
    assert "old has cloudpickle 3.0.0, expected %s (as on the scheduler)" % current in result["msg"]

    # During a rolling upgrade mixed versions are expected: the check can allow them.
    failed, result = run_module(capsys, scheduler_address=cluster.address, require_consistent_versions=False)
    assert not failed, result["msg"]

    # ... or judge only the workers of one batch: the others are not held against it.
    failed, result = run_module(capsys, scheduler_address=cluster.address, expected_workers=["w1"])
    assert not failed, result["msg"]
    assert result["unexpected_workers"] == ["old"]
    failed, result = run_module(capsys, scheduler_address=cluster.address, expected_workers=["old"])
    assert failed and [m["worker"] for m in result["version_mismatches"]] == ["old"]


def test_expected_versions(make_cluster, capsys):
    import dask

    cluster = make_cluster()
    cluster.add_worker("w1")
    python = "%d.%d" % sys.version_info[:2]

    failed, result = run_module(
        capsys, scheduler_address=cluster.address, expected_versions={"dask": dask.__version__, "python": python},
    )
    assert not failed, result["msg"]

    failed, result = run_module(capsys, scheduler_address=cluster.address, expected_versions={"dask": "2026.7.1"})
    assert failed
    assert result["version_mismatches"] == [
        {"worker": "w1", "package": "dask", "expected": "2026.7.1", "found": dask.__version__,
         "reference": "expected_versions"}
    ]
    assert "w1 has dask %s, expected 2026.7.1 (from expected_versions)" % dask.__version__ in result["msg"]


def test_a_package_of_the_environment_missing_on_the_scheduler_is_a_mismatch(make_cluster, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1", worker_class=ExtraPackageWorker)

    # Dask itself neither compares nor reports the package: the cluster looks healthy.
    failed, result = run_module(capsys, scheduler_address=cluster.address)
    assert not failed, result["msg"]
    assert "tabulate" not in result["workers"][0]["versions"]

    failed, result = run_module(capsys, scheduler_address=cluster.address, consistent_packages=["tabulate", "pytest"])
    assert failed
    assert result["scheduler"]["versions"]["tabulate"] is None
    assert result["scheduler"]["versions"]["pytest"] == result["workers"][0]["versions"]["pytest"] == pytest.__version__
    assert result["version_mismatches"] == [
        {"worker": "w1", "package": "tabulate", "expected": None, "found": "0.9.0", "reference": "scheduler"}
    ]
    assert "w1 has tabulate 0.9.0, expected None (as on the scheduler)" in result["msg"]


def test_drained_only_once_every_client_released_its_results(make_cluster, capsys):
    from distributed import Client

    cluster = make_cluster()
    cluster.add_worker("w1")
    client = Client(cluster.address, timeout=30)
    try:
        held = [client.scatter(b"x" * 1000), client.submit(sum, [1, 2])]
        held[1].result()
        failed, result = run_module(capsys, scheduler_address=cluster.address, require_drained=True)
        assert failed
        assert result["scheduler"]["task_counts"]["memory"] == 2
        assert "The scheduler still holds 2 task(s) (memory: 2): a client has not released its results." in result["msg"]

        # Waiting for the drain: the client releases its results meanwhile.
        threading.Timer(1.0, lambda: [f.release() for f in held]).start()
        failed, result = run_module(capsys, scheduler_address=cluster.address, require_drained=True,
                                    wait=True, wait_timeout=30, poll_interval=0.2)
        assert not failed, result["msg"]
        assert 0.5 < result["waited"] < 20, result["waited"]
        assert set(result["scheduler"]["task_counts"].values()) == {0}
    finally:
        client.close()

    # Without require_drained the tasks are not read at all.
    failed, result = run_module(capsys, scheduler_address=cluster.address)
    assert result["scheduler"]["task_counts"] is None


class TestTLS:
    @pytest.fixture
    def tls_cluster(self, make_cluster, tls_security):
        cluster = make_cluster(security=tls_security)
        cluster.add_worker("w1")
        assert cluster.address.startswith("tls://")
        return cluster

    def test_right_certificates(self, tls_cluster, tls_files, capsys):
        failed, result = run_module(
            capsys, scheduler_address=tls_cluster.address, expected_workers=["w1"],
            tls_ca_file=tls_files["ca"], tls_cert=tls_files["node_cert"], tls_key=tls_files["node_key"],
        )
        assert not failed, result["msg"]
        assert result["workers"][0]["address"].startswith("tls://")
        assert result["certificates"] == []  # not read unless asked for

    def test_days_left_of_the_certificates_the_servers_present(self, tls_cluster, tls_files, capsys):
        # The test certificates are valid for one day (conftest).
        files = dict(tls_ca_file=tls_files["ca"], tls_cert=tls_files["node_cert"], tls_key=tls_files["node_key"])
        failed, result = run_module(capsys, scheduler_address=tls_cluster.address, certificate_min_days=0, **files)
        assert not failed, result["msg"]
        assert [(c["name"], c["address"]) for c in result["certificates"]] == [
            ("scheduler", tls_cluster.address), ("w1", result["workers"][0]["address"])]
        assert all(0.9 < c["days_left"] <= 1.0 and c["not_after"].endswith("Z") for c in result["certificates"])

        failed, result = run_module(capsys, scheduler_address=tls_cluster.address, certificate_min_days=2, **files)
        assert failed and not result["healthy"]
        assert "TLS certificates the running processes present expire within 2.0 days: scheduler on" in result["msg"]
        assert "w1 on " in result["msg"] and "rolling_upgrade.yml" in result["msg"]

    def test_tls_address_without_certificates(self, tls_cluster, capsys):
        failed, result = run_module(capsys, scheduler_address=tls_cluster.address)
        assert failed
        assert "uses TLS but no client certificate was given" in result["msg"]

    def test_plain_tcp_is_refused(self, tls_cluster, capsys):
        address = tls_cluster.address.replace("tls://", "tcp://")
        failed, result = run_module(capsys, scheduler_address=address, timeout=2)
        assert failed
        assert "connection was closed before an answer" in result["msg"]
        assert "use a tls:// address" in result["msg"]

    def test_client_certificate_from_another_ca(self, tls_cluster, tls_files, capsys):
        failed, result = run_module(
            capsys, scheduler_address=tls_cluster.address,
            tls_ca_file=tls_files["ca"], tls_cert=tls_files["other_cert"], tls_key=tls_files["other_key"],
        )
        assert failed and result["workers"] == []
        # The scheduler's refusal arrives either as a TLS alert ("refused the TLS client
        # certificate") or, when the reset overtakes the alert, as a closed connection.
        assert "client certificate" in result["msg"]
        assert "tls_cert must be signed by the cluster's CA" in result["msg"]

    def test_scheduler_certificate_from_another_ca(self, tls_cluster, tls_files, capsys):
        failed, result = run_module(
            capsys, scheduler_address=tls_cluster.address, wait=True, wait_timeout=30,
            tls_ca_file=tls_files["other_ca"], tls_cert=tls_files["other_cert"], tls_key=tls_files["other_key"],
        )
        assert failed
        assert "the scheduler's certificate is not signed by tls_ca_file" in result["msg"]
        # Waiting does not help against a certificate from the wrong CA: it fails at once.
        assert result["waited"] < 5

    def test_missing_certificate_file(self, tls_cluster, tls_files, capsys, tmp_path):
        missing = str(tmp_path / "nope.pem")
        failed, result = run_module(
            capsys, scheduler_address=tls_cluster.address,
            tls_ca_file=tls_files["ca"], tls_cert=missing, tls_key=tls_files["node_key"],
        )
        assert failed
        assert "tls_cert %s is not a readable file" % missing in result["msg"]


# ---------------------------------------------------------------------------------------
# The real entry point: ansible runs the module through AnsiballZ with a chosen interpreter.


def _collections_path():
    """The directory holding ansible_collections/dataplatform/dask as this test imported it."""
    import ansible_collections.dataplatform.dask as collection

    return os.path.dirname(os.path.dirname(os.path.dirname(list(collection.__path__)[0])))


def run_ansible(module_args, interpreter, tmp_path):
    """Run the module with `ansible localhost -m` and return (exit code, the host's result)."""
    ansible = shutil.which("ansible", path=os.path.dirname(sys.executable))
    if ansible is None:
        pytest.skip("the ansible command is not installed next to %s" % sys.executable)
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=_collections_path(),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        [ansible, "localhost", "-c", "local", "-i", "localhost,",
         "-e", "ansible_python_interpreter=%s" % interpreter,
         "-m", "dataplatform.dask.cluster_health", "-a", json.dumps(module_args)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=90, check=False,
    )
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible printed no JSON:\n%s\n%s" % (proc.stdout, proc.stderr))
    return proc.returncode, output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_through_ansible(make_cluster, tmp_path):
    cluster = make_cluster()
    cluster.add_worker("w1")

    code, result = run_ansible(
        {"scheduler_address": cluster.address, "expected_workers": ["w1"], "min_workers": 1},
        sys.executable, tmp_path,
    )

    assert code == 0, result
    assert result["healthy"] is True and result["changed"] is False
    assert [w["name"] for w in result["workers"]] == ["w1"]


def test_interpreter_without_distributed(tmp_path):
    # A fresh venv has no Dask: the situation of a module run by a host's system Python.
    venv = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)

    code, result = run_ansible({"scheduler_address": "tcp://127.0.0.1:8786"}, str(venv / "bin" / "python"), tmp_path)

    assert code != 0 and result["failed"] is True
    assert "Failed to import the required Python library (distributed)" in result["msg"]
    assert "ansible_python_interpreter=/opt/dask/venvs/current/bin/python" in result["msg"]
    assert "Traceback" not in result["msg"]
