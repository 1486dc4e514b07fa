# -*- coding: utf-8 -*-
"""dataplatform.dask.retire_workers against real in-process Dask schedulers, workers and nannies."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from ansible.module_utils.testing import patch_module_args

distributed = pytest.importorskip("distributed", reason="these tests run real Dask servers: install dask[distributed] (requirements.txt)")

from distributed import Nanny, Worker  # noqa: E402
from distributed.core import Status  # noqa: E402

from inprocess import wait_until  # noqa: E402

from ansible_collections.dataplatform.dask.plugins.module_utils import _dask_retire  # noqa: E402
from ansible_collections.dataplatform.dask.plugins.modules import retire_workers  # noqa: E402

RETIRING = "closing_gracefully"


def run_module(capsys, **args):
    """Call the module's main() as Ansible would and return (failed, result)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            retire_workers.main()
    result = json.loads(capsys.readouterr().out)
    assert bool(exit_info.value.code) == bool(result.get("failed")), result
    return bool(result.get("failed")), result


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def events(cluster, action):
    """The scheduler's events of topic "all" with this action."""
    async def read():
        return [msg for dummy, msg in cluster.scheduler.get_events("all") if msg.get("action") == action]

    return cluster.dask_loop.run(read())


def test_retire_one_of_two_workers_moves_its_data(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w1.address)
    assert all(names == {"w1"} for names in data.holders().values())

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"])

    assert not failed, result["msg"]
    assert result["changed"] is True
    assert result["retired"] == ["w1"] and result["retired_addresses"] == [w1.address]
    assert result["not_retired"] == result["not_registered"] == []
    assert result["workers"] == [
        {"name": "w1", "address": w1.address, "status_before": "running", "status": RETIRING, "retired": True}
    ]
    assert "Retired w1 through the scheduler at %s" % cluster.address in result["msg"]
    assert cluster.status_of("w1") == RETIRING and cluster.status_of("w2") == "running"
    # Every key, the computed one too, now has a copy on w2.
    assert all("w2" in names for names in data.holders().values())
    assert data.intact()
    # The scheduler's log of it carries the module's stimulus id (the second event is the
    # retirement after waiting for running tasks).
    event = events(cluster, "retire-workers")[0]
    assert event["retired"] == [w1.address] and event["could-not-retire"] == []
    assert event["stimulus_id"].startswith("dataplatform.dask.retire_workers-")

    # A re-run (an upgrade run again) finds it retired with no data of its own: no change.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"])
    assert not failed, result["msg"]
    assert result["changed"] is False and result["retired"] == ["w1"]
    assert "no change" in result["msg"]

    # Stopping it now loses nothing.
    cluster.dask_loop.run(w1.close())
    wait_until(lambda: cluster.status_of("w1") is None, what="w1 to leave")
    [removed] = events(cluster, "remove-worker")
    assert removed["lost-scattered-tasks"] == removed["lost-computed-tasks"] == set()
    assert all(names == {"w2"} for names in data.holders().values())
    assert data.intact()

    # Run once more after it is gone: fails by default, skipped with missing_ok.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"])
    assert failed and result["not_registered"] == ["w1"] and result["changed"] is False
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], missing_ok=True)
    assert not failed, result["msg"]
    assert result["changed"] is False and result["not_registered"] == ["w1"] and result["retired"] == []
    assert "nothing to retire" in result["msg"]


def test_tasks_running_at_retirement_are_waited_for_and_their_results_moved(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w1.address, count=3)
    slow = data.start_slow(w1, 1.0)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"])
    assert not failed, result["msg"]
    assert "they run no task" in result["msg"]

    # The task that was running on w1 finished there, and its result moved away too.
    assert slow.done()
    assert "w2" in data.holders()[slow.key]
    assert cluster.status_of("w1") == RETIRING

    cluster.dask_loop.run(w1.close())
    wait_until(lambda: cluster.status_of("w1") is None, what="w1 to leave")
    assert data.intact()


def test_without_waiting_results_that_land_after_retirement_move_on_a_rerun(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w1.address, count=3)
    slow = data.start_slow(w1, 1.0)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], wait_for_tasks=False)
    assert not failed, result["msg"]

    # A task that was running when w1 was retired finishes there: w1 holds its result only.
    data.wait(slow)
    assert data.holders()[slow.key] == {"w1"}
    assert cluster.status_of("w1") == RETIRING

    # Retiring again (right before stopping) moves it: a change this time.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], wait_for_tasks=False)
    assert not failed, result["msg"]
    assert result["changed"] is True
    assert "w2" in data.holders()[slow.key]

    cluster.dask_loop.run(w1.close())
    wait_until(lambda: cluster.status_of("w1") is None, what="w1 to leave")
    assert data.intact()


def test_retiring_every_worker_retires_only_those_without_data(make_cluster, make_data, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")
    w2 = cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w2.address, count=3)

    # The capacity check refuses it first: nobody stays to take w2's data.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1", "w2"])
    assert failed and result["changed"] is False and result["retired"] == [], result["msg"]
    assert "no worker is running" in result["msg"] and not events(cluster, "retire-workers")

    # Without it, Dask's own behaviour: w1 has nothing to move and is retired; w2's data has
    # nowhere to go: retiring w1 cannot take it.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1", "w2"], check_capacity=False)
    assert failed and result["changed"] is True
    assert result["retired"] == ["w1"] and result["not_retired"] == ["w2"]
    assert "Dask could not retire w2" in result["msg"]
    assert "every registered worker was being retired" in result["msg"]
    assert "Nothing was stopped: w2 is running, with its data." in result["msg"]
    assert "Retired meanwhile" in result["msg"] and result["msg"].endswith(": w1.")
    assert cluster.status_of("w1") == RETIRING and cluster.status_of("w2") == "running"
    assert data.intact()


def test_retiring_the_only_worker_fails_and_keeps_it(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    data = make_data(cluster)
    data.scatter(w1.address, count=3)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"])
    assert failed and "no worker is running" in result["msg"] and not events(cluster, "retire-workers")

    # Without the capacity check, Dask gives up by itself.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], check_capacity=False)

    assert failed
    assert result["changed"] is False
    assert result["retired"] == [] and result["not_retired"] == ["w1"]
    assert "Dask could not retire w1 through the scheduler at %s" % cluster.address in result["msg"]
    assert "it is the last worker" in result["msg"]
    assert "Nothing was stopped: w1 is running, with its data." in result["msg"]
    assert result["workers"][0]["status"] == "running" and result["workers"][0]["retired"] is False
    # Dask gave its status back: it keeps working, with its data.
    assert cluster.status_of("w1") == "running"
    assert data.intact()
    [event] = events(cluster, "retire-workers")
    assert event["could-not-retire"] == [w1.address]


def test_no_running_worker_to_take_the_data(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    # Its memory monitor never resumes it (pausing is off).
    w2 = cluster.add_worker("w2", worker_class=SmallWorker)
    data = make_data(cluster)
    data.scatter(w1.address, count=3)

    async def pause():
        # What the worker's memory monitor does above the pause threshold.
        w2.status = Status.paused

    cluster.dask_loop.run(pause())
    wait_until(lambda: cluster.status_of("w2") == "paused", what="w2 to pause")

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"])
    assert failed and "no worker is running" in result["msg"] and not events(cluster, "retire-workers")

    # Without the capacity check, Dask gives up by itself.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], check_capacity=False)

    assert failed and result["not_retired"] == ["w1"]
    assert "no other worker is running to take its data (w2 (paused))" in result["msg"]
    assert cluster.status_of("w1") == "running"
    assert data.intact()


def test_unknown_name_fails_before_retiring_anything(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w1.address, count=3)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1", "w9"])

    assert failed and result["changed"] is False
    assert result["not_registered"] == ["w9"] and result["retired"] == []
    assert (
        "Workers not registered with the scheduler at %s: w9 (registered: w1 (running), w2 (running)). "
        "Nothing was retired." % cluster.address
    ) in result["msg"]
    assert cluster.status_of("w1") == "running"
    assert events(cluster, "retire-workers") == []
    assert all(names == {"w1"} for names in data.holders().values())

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1", "w9"], missing_ok=True)

    assert not failed, result["msg"]
    assert result["changed"] is True and result["retired"] == ["w1"] and result["not_registered"] == ["w9"]
    assert "Not registered, skipped: w9." in result["msg"]
    assert cluster.status_of("w1") == RETIRING
    assert data.intact()


def test_check_mode_retires_nothing(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w1.address, count=3)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], _ansible_check_mode=True)

    assert not failed, result["msg"]
    assert result["changed"] is True and result["retired"] == ["w1"]
    assert result["workers"][0]["status"] == "running"
    assert result["msg"].startswith("Would retire w1")
    assert cluster.status_of("w1") == "running"
    assert events(cluster, "retire-workers") == []
    assert all(names == {"w1"} for names in data.holders().values())

    # The names are checked in check mode too.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w9"], _ansible_check_mode=True)
    assert failed and result["not_registered"] == ["w9"]


class SlowToGiveDataWorker(Worker):
    """A worker whose data takes a while to leave it, as a big spilled worker's does."""

    async def get_data(self, comm, keys, who=None, serializers=None):
        await asyncio.sleep(1)
        return await super().get_data(comm, keys, who=who, serializers=serializers)


def test_timeout_leaves_the_retirement_to_the_scheduler(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1", worker_class=SlowToGiveDataWorker)
    cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w1.address, count=1)

    started = time.monotonic()
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], timeout=0.3)
    elapsed = time.monotonic() - started

    assert failed and result["changed"] is True
    assert "had not finished retiring w1 after 0.3 s" in result["msg"]
    assert "nothing was stopped" in result["msg"] and "w1 is closing_gracefully" in result["msg"]
    assert elapsed < 0.3 + 1.5, elapsed
    # The scheduler finishes the retirement by itself.
    wait_until(lambda: events(cluster, "retire-workers"), what="the retirement to end")
    assert events(cluster, "retire-workers")[0]["retired"] == [w1.address]
    assert data.intact()


class SmallWorker(Worker):
    """A worker with a 64 MiB memory limit that never pauses: in this test process (which
    uses more than that) it has no room below its pause threshold, yet stays running."""

    def __init__(self, *args, **kwargs):
        import dask

        with dask.config.set({"distributed.worker.memory.pause": False}):
            super().__init__(*args, memory_limit=64 << 20, **kwargs)


def test_a_batch_the_others_have_no_room_for_is_refused_before_retiring(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    cluster.add_worker("w2", worker_class=SmallWorker)
    data = make_data(cluster)
    data.scatter(w1.address, count=10, size=100000)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"])

    assert failed and result["changed"] is False and result["retired"] == [], result
    assert result["not_retired"] == ["w1"]
    msg = result["msg"]
    assert "w1 hold 1.0 MiB of results no other worker has" in msg, msg
    assert "have room for 0 B below their pause threshold (0.8 of the memory limit, less a margin of 0.1): w2 0 B" in msg
    assert "Nothing was retired" in msg and "smaller dask_upgrade_batch_size" in msg
    assert cluster.status_of("w1") == "running" and not events(cluster, "retire-workers")
    assert data.intact()
    # In check mode the same refusal; without the check, Dask moves it all to w2.
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], _ansible_check_mode=True)
    assert failed and "have room for 0 B" in result["msg"]
    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], check_capacity=False)
    assert not failed and result["retired"] == ["w1"], result["msg"]
    assert data.intact()


def test_capacity_counts_only_what_the_batch_alone_holds():
    has_what = {"a1": [["x", 0], "y", "z"], "a2": ["y", "w"], "a3": ["z"]}
    nbytes = {"('x', 0)": 1, ("x", 0): 100, "y": 10, "z": 1000, "w": 5}
    # Key ("x", 0) comes back from msgpack as a list; "y" is on a1 and a2 (both leaving).
    assert _dask_retire.unique_bytes(has_what, nbytes, ["a1"]) == 100
    assert _dask_retire.unique_bytes(has_what, nbytes, ["a1", "a2"]) == 115
    assert _dask_retire.unique_bytes(has_what, nbytes, ["a3"]) == 0


def test_capacity_arithmetic():
    gib = 1 << 30
    targets = [{"name": "w1", "address": "a1"}]

    def worker(name, status="running", limit=4 * gib, memory=gib):
        return {"name": name, "status": status, "memory_limit": limit, "metrics": {"memory": memory}}

    workers = {"a1": worker("w1"), "a2": worker("w2"), "a3": worker("w3", status="paused")}
    # w2's room: (0.8 - 0.1) * 4 GiB - 1 GiB = 1.8 GiB; paused w3 takes nothing.
    assert _dask_retire.capacity_problem(targets, workers, int(1.8 * gib), 0.8, 0.1) is None
    problem = _dask_retire.capacity_problem(targets, workers, int(1.9 * gib), 0.8, 0.1)
    assert "w1 hold 1.9 GiB" in problem and "room for 1.8 GiB" in problem and "w2 1.8 GiB" in problem
    # A larger margin leaves less room; nothing to move is never a problem.
    assert _dask_retire.capacity_problem(targets, workers, gib, 0.8, 0.5) is not None
    assert _dask_retire.capacity_problem(targets, workers, 0, 0.8, 0.5) is None
    # A recipient over its threshold has no room (not negative room).
    workers["a4"] = worker("w4", memory=4 * gib)
    assert "w4 0 B" in _dask_retire.capacity_problem(targets, workers, 2 * gib, 0.8, 0.1)
    # A recipient without a memory limit takes anything.
    workers["a5"] = worker("w5", limit=0)
    assert _dask_retire.capacity_problem(targets, workers, 100 * gib, 0.8, 0.1) is None
    # No running recipient at all.
    only = {"a1": worker("w1"), "a3": worker("w3", status="paused")}
    assert "no worker is running" in _dask_retire.capacity_problem(targets, only, 1, 0.8, 0.1)


def test_retire_with_remove(make_cluster, make_data, capsys):
    cluster = make_cluster()
    w1 = cluster.add_worker("w1")
    cluster.add_worker("w2")
    data = make_data(cluster)
    data.scatter(w1.address, count=3)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["w1"], remove=True)

    assert not failed, result["msg"]
    assert result["changed"] is True and result["retired"] == ["w1"]
    assert result["workers"][0]["status"] is None
    assert "removed from the scheduler" in result["msg"]
    [removed] = events(cluster, "remove-worker")
    assert removed["expected"] is True and removed["lost-scattered-tasks"] == set()
    assert data.intact()


class TestTLS:
    @pytest.fixture
    def tls_cluster(self, make_cluster, tls_security):
        cluster = make_cluster(security=tls_security)
        cluster.add_worker("w1")
        cluster.add_worker("w2")
        assert cluster.address.startswith("tls://")
        return cluster

    def test_right_certificates(self, tls_cluster, tls_files, make_data, capsys):
        w1 = [w for w in tls_cluster.servers if getattr(w, "name", None) == "w1"][0]
        data = make_data(tls_cluster)
        data.scatter(w1.address, count=3)

        failed, result = run_module(
            capsys, scheduler_address=tls_cluster.address, names=["w1"],
            tls_ca_file=tls_files["ca"], tls_cert=tls_files["node_cert"], tls_key=tls_files["node_key"],
        )

        assert not failed, result["msg"]
        assert result["retired_addresses"][0].startswith("tls://")
        assert tls_cluster.status_of("w1") == RETIRING
        assert data.intact()

    def test_tls_address_without_certificates(self, tls_cluster, capsys):
        failed, result = run_module(capsys, scheduler_address=tls_cluster.address, names=["w1"])
        assert failed
        assert "uses TLS but no client certificate was given" in result["msg"]
        assert "Nothing was retired." in result["msg"]
        assert tls_cluster.status_of("w1") == "running"


def test_unreachable_scheduler_fails_within_connect_timeout(capsys):
    address = "tcp://127.0.0.1:%d" % free_port()  # nothing listens there

    started = time.monotonic()
    failed, result = run_module(capsys, scheduler_address=address, names=["w1"], connect_timeout=1)
    elapsed = time.monotonic() - started

    assert failed and result["changed"] is False and result["retired"] == []
    assert "could not connect within 1.0 s" in result["msg"]
    assert "Nothing was retired." in result["msg"]
    assert elapsed < 1 + 1.5, elapsed


def test_bad_arguments(capsys):
    failed, result = run_module(capsys, scheduler_address="tcp://127.0.0.1:8786", names=[])
    assert failed and "names must list the workers to retire" in result["msg"]
    failed, result = run_module(capsys, scheduler_address="tcp://127.0.0.1:8786", names=["w1"], timeout=0)
    assert failed and "timeout must be a positive number of seconds" in result["msg"]


# ---------------------------------------------------------------------------------------
# The rolling upgrade's sequence with nannies, as `dask worker --nanny` runs them: retire the
# worker (process left running), then stop its nanny the way the CLI does on SIGTERM
# (distributed/cli/dask_worker.py: `n.close(timeout=10, reason="signal-15")`).


def test_retire_then_stop_the_nanny_loses_nothing(make_cluster, make_data, capsys, tmp_path):
    cluster = make_cluster()

    async def start(name):
        nanny = await Nanny(
            cluster.address, name=name, host="127.0.0.1", nthreads=1,
            local_directory=str(tmp_path / ("nanny-" + name)),
        )
        cluster.servers.append(nanny)
        return nanny

    old = cluster.dask_loop.run(start("old1"), timeout=60)
    cluster.dask_loop.run(start("w2"), timeout=60)
    old_worker = old.worker_address
    data = make_data(cluster)
    data.scatter(old_worker, count=10)

    failed, result = run_module(capsys, scheduler_address=cluster.address, names=["old1"])
    assert not failed, result["msg"]
    assert result["workers"][0]["status"] == RETIRING

    # SIGTERM through the nanny: the nanny closes first, then asks the worker process to close.
    cluster.dask_loop.run(old.close(timeout=10, reason="signal-15"), timeout=30)
    wait_until(lambda: cluster.status_of("old1") is None, what="old1 to leave")

    [removed] = [e for e in events(cluster, "remove-worker") if e["worker"] == old_worker]
    # The scheduler sees a worker that disconnected: not "expected", but nothing is lost.
    assert removed["expected"] is False
    assert removed["stimulus_id"].startswith("handle-worker-cleanup-")
    assert removed["lost-scattered-tasks"] == removed["lost-computed-tasks"] == set()
    assert removed["processing-tasks"] == set()
    assert data.intact()
    # The nanny did not start a new worker process.
    time.sleep(0.5)
    assert old.status == Status.closed and old.process is None
    assert cluster.status_of("old1") is None and cluster.status_of("w2") == "running"
