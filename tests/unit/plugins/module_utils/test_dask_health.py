# -*- coding: utf-8 -*-
"""The judging rules of _dask_health and the TLS argument checks of _dask_comm.

evaluate() is pure: these tests give it snapshots shaped like snapshot() returns them
(the module tests produce the same situations with real Dask servers).
"""

from __future__ import annotations

import pytest

from ansible_collections.dataplatform.dask.plugins.module_utils._dask_comm import (
    DaskCommError,
    address_scheme,
    connection_args,
)
from ansible_collections.dataplatform.dask.plugins.module_utils._dask_health import evaluate, version_matches

VERSIONS = {"python": "3.11.7.final.0", "dask": "2026.8.0", "distributed": "2026.8.0", "cloudpickle": "3.1.2",
            "msgpack": "1.2.4", "tornado": "6.6.1", "toolz": "1.2.0", "lz4": None}
SCHEDULER = {"address": "tcp://10.0.0.5:8786", "id": "Scheduler-1", "started": 0.0, "versions": VERSIONS}


def worker(name, status="running", versions=None):
    versions = VERSIONS if versions is None else versions
    return {"name": name, "address": "tcp://10.0.0.6:%d" % (40000 + len(name)), "status": status,
            "nthreads": 1, "memory_limit": 0, "last_seen": 0.0, "versions": versions}


@pytest.mark.parametrize("found, expected, matches", [
    ("2026.8.0", "2026.8.0", True),
    ("2026.8.0", "2026.8", True),
    ("3.11.7.final.0", "3.11", True),
    ("3.11.7.final.0", "3.1", False),  # a prefix must end at a dot
    ("2026.8.0", "2026.8.0.1", False),
    (None, "1.0", False),  # not installed
])
def test_version_matches(found, expected, matches):
    assert version_matches(found, expected) is matches


def test_empty_cluster_is_healthy_without_requirements():
    facts, problems = evaluate(SCHEDULER, [])
    assert problems == [] and facts["worker_count"] == 0


def test_worker_without_versions_is_a_problem_only_when_versions_are_checked():
    silent = worker("w1", versions={})
    silent["versions"] = None  # what snapshot() gives for a worker that did not answer
    facts, problems = evaluate(SCHEDULER, [silent])
    assert problems == [
        "Could not read the package versions of workers w1: the scheduler got no answer from them in time. "
        "Check that the scheduler can reach each worker's address."
    ]
    facts, problems = evaluate(SCHEDULER, [silent], require_consistent_versions=False)
    assert problems == []


def test_missing_package_on_a_worker_is_a_mismatch():
    without_toolz = dict(VERSIONS, toolz=None)
    facts, problems = evaluate(SCHEDULER, [worker("w1", versions=without_toolz)])
    assert facts["version_mismatches"] == [
        {"worker": "w1", "package": "toolz", "expected": "1.2.0", "found": None, "reference": "scheduler"}
    ]


def test_expected_versions_accept_numbers_from_yaml():
    # expected_versions: {python: 3.11} arrives as a float; it must still compare as text.
    facts, problems = evaluate(SCHEDULER, [worker("w1")], expected_versions={"python": 3.11})
    assert problems == []


def test_paused_worker_counts_towards_min_workers_only_when_healthy():
    workers = [worker("w1"), worker("w2", status="paused")]
    facts, problems = evaluate(SCHEDULER, workers, min_workers=2)
    assert facts["unhealthy_workers"] == ["w2"]
    assert "Expected at least 2 workers in status running, found 1 (registered: w1 (running), w2 (paused))." in problems
    facts, problems = evaluate(SCHEDULER, workers, min_workers=2, healthy_statuses=["running", "paused"])
    assert problems == []


@pytest.mark.parametrize("address, scheme", [
    ("tcp://10.0.0.5:8786", "tcp"), ("TLS://10.0.0.5:8786", "tls"), ("10.0.0.5:8786", "tcp"),
])
def test_address_scheme(address, scheme):
    assert address_scheme(address) == scheme


def test_plain_address_needs_no_tls():
    assert connection_args("tcp://10.0.0.5:8786") == {}


@pytest.mark.parametrize("address, files, words", [
    ("tls://10.0.0.5:8786", {}, "uses TLS but no client certificate was given"),
    ("tcp://10.0.0.5:8786", {"ca_file": "/ca.pem", "cert": "/c.pem"}, "use a tls:// address"),
    ("tls://10.0.0.5:8786", {"ca_file": "/ca.pem"}, "needs both tls_ca_file"),
    ("tls://10.0.0.5:8786", {"ca_file": "/nonexistent/ca.pem", "cert": "/nonexistent/c.pem"},
     "tls_ca_file /nonexistent/ca.pem is not a readable file"),
])
def test_tls_arguments_are_checked(address, files, words):
    with pytest.raises(DaskCommError) as error:
        connection_args(address, **files)
    assert words in error.value.message
    assert error.value.permanent


def test_tls_files_that_are_not_pem(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(DaskCommError) as error:
        connection_args("tls://10.0.0.5:8786", ca_file=str(junk), cert=str(junk))
    assert "Could not load the TLS files" in error.value.message
