# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Health of a Dask cluster as its scheduler sees it: read a snapshot, judge it, wait for it.

Private to the collection. Reading goes through _dask_comm.call_scheduler; judging
(``evaluate``) is pure so that it can be reasoned about without a cluster.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter

from ansible_collections.dataplatform.dask.plugins.module_utils._dask_comm import (
    DaskCommError,
    call_scheduler,
)

# Packages Dask itself requires to be identical on client, scheduler and workers
# (distributed.versions.required_packages, plus the interpreter): a mismatch can break
# (de)serialisation while Dask only warns about it.
CONSISTENT_PACKAGES = ("dask", "distributed", "msgpack", "cloudpickle", "tornado", "toolz", "python")

# Share of a check's timeout kept in reserve while the scheduler asks every worker for its
# versions, so that one unreachable worker costs the version check, not the whole answer.
_BROADCAST_RESERVE = 0.2

# A wait must not shrink an attempt to nothing when it starts just before the deadline.
_MIN_ATTEMPT_TIMEOUT = 1.0


# Task states the scheduler reports per task prefix (get_task_prefix_states): any task in
# one of them is something a client still holds or waits for.
TASK_STATES = ("memory", "processing", "waiting", "erred", "released")


async def read_cluster(remote, timeout, packages=(), read_tasks=False):
    """Read the scheduler's view with handlers of the scheduler (distributed.scheduler):

    - ``identity()``: id, address, start time and every registered worker (name, status,
      nthreads, memory_limit, last_seen), from the scheduler's memory: cheap;
    - ``versions(packages=...)``: the scheduler's own versions, of Dask's packages and of
      ``packages`` (Dask reports others only when asked);
    - ``broadcast(msg={"op": "versions", "packages": ...}, on_error="ignore")``: each
      worker's ``versions`` handler, called by the scheduler; a worker that fails to answer
      is left out;
    - with ``read_tasks``, ``get_task_prefix_states()``: how many tasks are in each state.

    Returns ``(identity, scheduler_versions, worker_versions, task_counts)``;
    ``worker_versions`` is ``None`` when the broadcast did not finish in time, and
    ``task_counts`` is ``None`` unless ``read_tasks``.
    """
    started = time.monotonic()
    packages = list(packages)
    identity = await remote.identity()
    scheduler_versions = await remote.versions(packages=packages)
    task_counts = None
    if read_tasks:
        prefixes = await remote.get_task_prefix_states()
        task_counts = dict((state, sum(int(p.get(state) or 0) for p in prefixes.values())) for state in TASK_STATES)
    left = timeout * (1 - _BROADCAST_RESERVE) - (time.monotonic() - started)
    try:
        worker_versions = await asyncio.wait_for(
            remote.broadcast(msg={"op": "versions", "packages": packages}, on_error="ignore"), max(left, 0.1)
        )
    except asyncio.TimeoutError:
        worker_versions = None
    return identity, scheduler_versions, worker_versions, task_counts


async def read_certificates(addresses, conn_args, timeout):
    """``{address: notAfter}`` (seconds since the epoch) of the TLS certificate each server at
    ``addresses`` presents in a handshake: what the running process loaded, which may be older
    than the file on its disk (a restart pending). ``None`` for a server that could not be
    reached in ``timeout`` or presented nothing readable."""
    from distributed.comm import connect  # pylint: disable=import-outside-toplevel

    async def one(address):
        try:
            comm = await connect(address, timeout=timeout, **conn_args)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            return address, None
        try:
            not_after = (comm.extra_info.get("peercert") or {}).get("notAfter")
            return address, ssl.cert_time_to_seconds(not_after) if not_after else None
        finally:
            await comm.close()

    return dict(await asyncio.gather(*(one(a) for a in addresses)))


def certificate_entries(scheduler, workers, not_after, now):
    """The module's ``certificates``: one entry per server (scheduler first, then the workers by
    name), with its certificate's end and the days left (``None`` when it was not read)."""
    servers = [("scheduler", scheduler.get("address"))] + [(w["name"], w["address"]) for w in workers]
    entries = []
    for name, address in servers:
        end = not_after.get(address)
        entries.append({
            "name": name, "address": address,
            "not_after": None if end is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
            "days_left": None if end is None else round((end - now) / 86400.0, 1),
        })
    return entries


def _packages(versions):
    """The ``packages`` part of a distributed.versions.get_versions() answer, as strings."""
    if not isinstance(versions, dict):
        return {}
    packages = versions.get("packages") or {}
    return dict((name, None if v is None else str(v)) for name, v in packages.items())


def version_matches(found, expected):
    """``expected`` matches ``found`` exactly or as a prefix of dotted parts: 3.11 matches 3.11.7.final.0."""
    if found is None:
        return False
    return found == expected or found.startswith(expected + ".")


def snapshot(raw):
    """Shape the raw answers of read_cluster() into the module's scheduler/workers values."""
    identity, scheduler_versions, worker_versions, task_counts = raw
    workers = []
    for address, info in sorted(identity.get("workers", {}).items(), key=lambda kv: str(kv[1].get("name"))):
        # Dask names are whatever the worker was started with (LocalCluster uses ints).
        workers.append({
            "name": str(info.get("name", address)),
            "address": address,
            "status": info.get("status"),
            "nthreads": info.get("nthreads"),
            "memory_limit": info.get("memory_limit"),
            "last_seen": info.get("last_seen"),
            "versions": None if worker_versions is None or address not in worker_versions
            else _packages(worker_versions[address]),
        })
    scheduler = {
        "address": identity.get("address"),
        "id": identity.get("id"),
        "started": identity.get("started"),
        "versions": _packages(scheduler_versions),
        "task_counts": task_counts,
    }
    return scheduler, workers


def consistent_package_names(consistent_packages=()):
    """Dask's own packages that must match, then the further ones asked for, each once."""
    names = list(CONSISTENT_PACKAGES)
    for name in consistent_packages:
        if name not in names:
            names.append(name)
    return names


def _describe(mismatch):
    source = "as on the scheduler" if mismatch["reference"] == "scheduler" else "from expected_versions"
    return "%(worker)s has %(package)s %(found)s, expected %(expected)s" % mismatch + " (%s)" % source


def _names(items):
    return ", ".join(items) if items else "none"


def evaluate(scheduler, workers, min_workers=0, expected_workers=(), healthy_statuses=("running",),
             expected_versions=None, require_consistent_versions=True, consistent_packages=(),
             require_drained=False, certificate_min_days=None, certificates=()):
    """Judge a snapshot. Returns ``(facts, problems)``: facts are the module's return values
    (all but scheduler/workers/waited/msg), problems are sentences, empty when healthy.

    ``consistent_packages`` are compared like Dask's own (with require_consistent_versions);
    ``require_drained`` wants a scheduler that holds no task (``scheduler["task_counts"]``);
    ``certificate_min_days`` wants every certificate of ``certificates`` (certificate_entries)
    valid for at least that many more days."""
    expected_versions = dict((k, str(v)) for k, v in (expected_versions or {}).items())
    healthy_statuses = list(healthy_statuses)
    problems = []
    names = [w["name"] for w in workers]
    status_counts = dict(Counter(w["status"] for w in workers))

    # With expected_workers the check is about those workers (e.g. one batch of a rolling
    # upgrade): others are listed as unexpected, not judged on status or versions.
    in_scope = [w for w in workers if w["name"] in expected_workers] if expected_workers else workers
    healthy = [w for w in workers if w["status"] in healthy_statuses]
    unhealthy = [w for w in in_scope if w["status"] not in healthy_statuses]
    missing = [n for n in expected_workers if n not in names]
    unexpected = [n for n in names if n not in expected_workers] if expected_workers else []

    if len(healthy) < min_workers:
        problems.append(
            "Expected at least %d workers in status %s, found %d (registered: %s)."
            % (min_workers, "/".join(healthy_statuses), len(healthy),
               _names(["%s (%s)" % (w["name"], w["status"]) for w in workers]))
        )
    if missing:
        problems.append(
            "Expected workers not registered with the scheduler: %s (registered: %s)."
            % (_names(missing), _names(names))
        )
    if unhealthy:
        problems.append(
            "Workers not in a healthy status (%s): %s."
            % ("/".join(healthy_statuses), _names(["%s is %s" % (w["name"], w["status"]) for w in unhealthy]))
        )

    mismatches = []
    check_versions = require_consistent_versions or expected_versions
    no_versions = [w["name"] for w in in_scope if w["versions"] is None] if check_versions else []
    if no_versions:
        problems.append(
            "Could not read the package versions of workers %s: the scheduler got no answer from "
            "them in time. Check that the scheduler can reach each worker's address." % _names(no_versions)
        )
    nodes = [(w["name"], w["versions"]) for w in in_scope if w["versions"] is not None]
    for package, expected in sorted(expected_versions.items()):
        for node, versions in nodes:
            found = versions.get(package)
            if not version_matches(found, expected):
                mismatches.append({"worker": node, "package": package, "expected": expected,
                                   "found": found, "reference": "expected_versions"})
    if require_consistent_versions:
        for package in consistent_package_names(consistent_packages):
            reference = scheduler["versions"].get(package)
            for node, versions in nodes:
                if versions.get(package) != reference:
                    mismatches.append({"worker": node, "package": package, "expected": reference,
                                       "found": versions.get(package), "reference": "scheduler"})
    if mismatches:
        problems.append("Package versions differ: %s." % "; ".join(_describe(m) for m in mismatches))

    held = dict((state, n) for state, n in sorted((scheduler.get("task_counts") or {}).items()) if n)
    if require_drained and held:
        problems.append(
            "The scheduler still holds %d task(s) (%s): a client has not released its results."
            % (sum(held.values()), ", ".join("%s: %d" % item for item in held.items()))
        )

    if certificate_min_days is not None:
        unread = [c["name"] for c in certificates if c["days_left"] is None]
        short = [c for c in certificates if c["days_left"] is not None and c["days_left"] < certificate_min_days]
        if unread:
            problems.append("Could not read the TLS certificate presented by %s." % _names(unread))
        if short:
            problems.append(
                "TLS certificates the running processes present expire within %s days: %s. Renew them "
                "(site.yml issues certificates due within dask_common_tls_renew_days) and apply the restarts "
                "pending (rolling_upgrade.yml)." % (certificate_min_days, _names(
                    ["%s on %s (%s days left)" % (c["name"], c["not_after"], c["days_left"]) for c in short])))

    facts = {
        "worker_count": len(workers),
        "status_counts": status_counts,
        "missing_workers": missing,
        "unexpected_workers": unexpected,
        "unhealthy_workers": [w["name"] for w in unhealthy],
        "version_mismatches": mismatches,
        "certificates": list(certificates),
    }
    return facts, problems


def unreadable_result(address, problem, waited=0.0):
    """The module's result when the scheduler could not be read at all (same keys as check_cluster's)."""
    return {
        "healthy": False,
        "scheduler": {"address": address, "id": None, "started": None, "versions": {}, "task_counts": None},
        "workers": [],
        "problems": [problem],
        "waited": waited,
        "worker_count": 0,
        "status_counts": {},
        "missing_workers": [],
        "unexpected_workers": [],
        "unhealthy_workers": [],
        "version_mismatches": [],
        "certificates": [],
    }


async def check_cluster(address, conn_args, timeout, criteria, wait=False, wait_timeout=300.0,
                        poll_interval=2.0):
    """Check the cluster once, or until it is healthy when ``wait`` (at most ``wait_timeout`` s).

    ``criteria`` are evaluate()'s keyword arguments. Returns the module's result without
    ``msg``: healthy, scheduler, workers, the facts, problems, waited.
    """
    start = time.monotonic()
    deadline = start + (wait_timeout if wait else 0)
    # Dask reports packages outside its own set only when they are named.
    # ("python" is not a package: Dask reports it from the interpreter.)
    asked = sorted((set(consistent_package_names(criteria.get("consistent_packages", ())))
                    | set(criteria.get("expected_versions") or {})) - {"python"})
    while True:
        attempt_timeout = timeout
        if wait:
            # The last attempt must not run far past the deadline the user gave.
            attempt_timeout = min(timeout, max(deadline - time.monotonic(), _MIN_ATTEMPT_TIMEOUT))
        permanent = False
        try:
            raw = await call_scheduler(
                address,
                lambda remote, t=attempt_timeout: read_cluster(
                    remote, t, packages=asked, read_tasks=criteria.get("require_drained", False)),
                "read the cluster state",
                attempt_timeout,
                conn_args,
            )
        except DaskCommError as exc:
            result = unreadable_result(address, exc.message)
            permanent = exc.permanent
        else:
            scheduler, workers = snapshot(raw)
            certificates = []
            if criteria.get("certificate_min_days") is not None and conn_args:
                not_after = await read_certificates(
                    [scheduler["address"]] + [w["address"] for w in workers], conn_args, attempt_timeout)
                certificates = certificate_entries(scheduler, workers, not_after, time.time())
            facts, problems = evaluate(scheduler, workers, certificates=certificates, **criteria)
            result = dict(facts, healthy=not problems, scheduler=scheduler, workers=workers, problems=problems)
        if result["healthy"] or permanent or time.monotonic() + poll_interval >= deadline:
            break
        await asyncio.sleep(poll_interval)

    result["waited"] = round(time.monotonic() - start, 3)
    return result
