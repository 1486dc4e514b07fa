# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Retire Dask workers through their scheduler and check that it happened.

Private to the collection. Talking goes through _dask_comm.call_scheduler; the judging
(``plan``, ``judge``) is pure so that it can be reasoned about without a cluster.

What Dask does (distributed.scheduler.Scheduler.retire_workers, 2026.x):

- it sets each worker ``closing_gracefully`` (no new tasks), asks the Active Memory
  Manager (RetireWorker policy) to copy every key held only by that worker to another
  worker, and waits for that; then, with ``remove``, it removes the worker
  (``expected=True``) and, with ``close_workers``, tells it to close;
- it gives up on a worker when no other worker can take its data (it is the last one,
  every other worker is paused or retiring, or it holds actors): that worker gets its
  previous status back, is logged in a ``could-not-retire`` event and is missing from
  the answer, a dict ``address -> worker identity`` of the workers it did retire;
- names it does not know are silently ignored, hence the check against ``identity()``
  before, and the check of the answer after;
- it moves a worker's data whatever room the others have left: recipients above their pause
  threshold stop computing, and spill or are terminated by their nanny. Hence the capacity
  check (``capacity_problem``) before asking it.
"""

from __future__ import annotations

import asyncio
import time

from ansible_collections.dataplatform.dask.plugins.module_utils._dask_comm import (
    DaskCommError,
    call_scheduler,
)

RETIRING = "closing_gracefully"

# After Dask gave up on a worker it sends the worker its previous status, and the worker
# confirms it to the scheduler: for a moment the scheduler still shows it retiring.
_SETTLE_SECONDS = 2.0
_SETTLE_POLL = 0.1
# Longer than a worker's heartbeat interval on a small cluster.
_HEARTBEAT_WAIT = 1.0


def _names(items):
    return ", ".join(items) if items else "none"


def _hashable(key):
    """A Dask key as msgpack returns it (tuples become lists) in a form usable in a set."""
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key


async def read_before(remote, names, close_workers, remove):
    """``identity()``'s workers and, for a re-run, how many keys each requested worker holds that no
    other worker has.

    The keys (``has_what()``) are read only when a requested worker is already retiring and the call
    would neither close nor remove it: only then can retiring it again change nothing. Returns
    ``(workers, unique)``; ``unique`` maps address -> count, ``None`` when not read.
    """
    workers = (await remote.identity()).get("workers", {})
    wanted = set(names)
    retiring = [a for a, i in workers.items() if str(i.get("name", a)) in wanted and i.get("status") == RETIRING]
    if close_workers or remove or not retiring:
        return workers, None
    has_what = await remote.has_what()
    holders = {}
    for address, keys in has_what.items():
        for key in keys:
            holders.setdefault(_hashable(key), set()).add(address)
    unique = dict(
        (address, sum(1 for key in has_what.get(address, ()) if holders[_hashable(key)] == {address}))
        for address in retiring
    )
    return workers, unique


def unique_bytes(has_what, nbytes, addresses):
    """Bytes of the keys that only the workers at ``addresses`` hold (a key held by several of
    them counts once): what retiring them all must move. ``has_what`` and ``nbytes`` are the
    scheduler's answers (address -> keys, key -> bytes)."""
    holders = {}
    for address, keys in has_what.items():
        for key in keys:
            holders.setdefault(_hashable(key), set()).add(address)
    sizes = dict((_hashable(key), size) for key, size in nbytes.items())
    batch = set(addresses)
    return sum(max(sizes.get(key, 0), 0) for key, where in holders.items() if where <= batch)


async def read_unique_bytes(remote, addresses):
    return unique_bytes(await remote.has_what(), await remote.nbytes(summary=False), addresses)


def _size(count):
    """Bytes for messages: 1.5 GiB, 300.0 MiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(count) >= scale:
            return "%.1f %s" % (count / scale, unit)
    return "%d B" % count


def capacity_problem(targets, workers, unique_bytes, pause_fraction, margin):
    """Why the other running workers cannot take what ``targets`` hold alone, or ``None``.

    A recipient has room for ``(pause_fraction - margin) * memory_limit`` less the memory its
    process uses now (what Dask compares with the pause threshold); a worker without a memory
    limit has room for anything. ``workers`` is identity()'s, ``unique_bytes`` the batch's
    (read_unique_bytes).
    """
    if unique_bytes <= 0:
        return None
    leaving = set(t["address"] for t in targets)
    recipients = sorted(
        (str(info.get("name", address)), info) for address, info in workers.items()
        if address not in leaving and info.get("status") == "running"
    )
    if any(not info.get("memory_limit") for dummy, info in recipients):
        return None
    rooms = [(name, max(0.0, (pause_fraction - margin) * info["memory_limit"]
                        - ((info.get("metrics") or {}).get("memory") or 0)))
             for name, info in recipients]
    room = sum(r for dummy, r in rooms)
    if unique_bytes <= room:
        return None
    return (
        "%s hold %s of results no other worker has, but the other running workers have room for %s below "
        "their pause threshold (%s of the memory limit, less a margin of %s): %s. Retiring would push them "
        "past it (they would stop computing, spill, or be restarted by their nanny). Nothing was retired. "
        "Retire fewer workers at once (a smaller dask_upgrade_batch_size), add workers first (scale.yml), or "
        "wait until the users release results." % (
            _names([t["name"] for t in targets]), _size(unique_bytes), _size(room), pause_fraction, margin,
            _names(["%s %s" % (name, _size(r)) for name, r in rooms]) if rooms else "no worker is running",
        )
    )


def describe(workers):
    """``name (status)`` of every registered worker, sorted by name, for messages."""
    return _names(sorted("%s (%s)" % (info.get("name", address), info.get("status")) for address, info in workers.items()))


def plan(names, workers, close_workers, remove, unique=None):
    """Match the requested names with the registered workers.

    Returns ``(targets, not_registered, pending)``: ``targets`` are dicts (name, address,
    status_before) in the order of ``names``, ``not_registered`` the names no worker has, and
    ``pending`` the targets retiring would change: all of them, except workers already
    retiring that hold no data of their own when the call would neither close nor remove them
    (retiring them again changes nothing).
    """
    by_name = dict((str(info.get("name", address)), (address, info)) for address, info in workers.items())
    targets, not_registered = [], []
    for name in names:
        if name in by_name:
            address, info = by_name[name]
            targets.append({"name": name, "address": address, "status_before": info.get("status")})
        else:
            not_registered.append(name)
    pending = []
    for target in targets:
        settled = (
            not close_workers and not remove and target["status_before"] == RETIRING
            and unique is not None and unique.get(target["address"]) == 0
        )
        if not settled:
            pending.append(target)
    return targets, not_registered, pending


def why_not(before, requested):
    """The likely reason Dask could not retire a worker, from the workers seen before retiring."""
    others = dict((a, i) for a, i in before.items() if str(i.get("name", a)) not in requested)
    running = sorted(str(i.get("name", a)) for a, i in others.items() if i.get("status") == "running")
    if not before or not others:
        if len(requested) > 1:
            return ("no other worker is left to take its data: every registered worker was being retired, "
                    "and retiring workers cannot take data")
        return "it is the last worker, so there is nowhere to move its data"
    if not running:
        return ("no other worker is running to take its data (%s): paused and retiring workers cannot take data"
                % describe(others))
    return ("other workers run (%s), so it probably holds an actor, which Dask cannot move, or the workers "
            "that were to receive its data failed; the scheduler's log says which ('Could not retire worker', "
            "'Tried retiring worker')" % _names(running))


async def _read_after(remote, targets, retired_addresses, timeout):
    """``identity()``'s workers once the workers Dask gave up on have their status back (waiting
    for that at most a few seconds, well within ``timeout``). ``retired_addresses`` is ``None``
    when Dask did not answer: then nobody's status is coming back."""
    deadline = time.monotonic() + min(_SETTLE_SECONDS, 0.5 * timeout)
    while True:
        workers = (await remote.identity()).get("workers", {})
        if retired_addresses is None:
            return workers
        unsettled = [
            t for t in targets
            if t["address"] not in retired_addresses and t["status_before"] != RETIRING
            and workers.get(t["address"], {}).get("status") == RETIRING
        ]
        if not unsettled or time.monotonic() >= deadline:
            return workers
        await asyncio.sleep(_SETTLE_POLL)


async def _retire(remote, names, close_workers, remove, budget, stimulus_id):
    """Call the scheduler's ``retire_workers``; ``None`` if it has not answered within ``budget``."""
    try:
        return await asyncio.wait_for(
            remote.retire_workers(names=names, close_workers=close_workers, remove=remove, stimulus_id=stimulus_id),
            budget,
        )
    except asyncio.TimeoutError:
        return None


def _worker_entries(targets, retired_addresses, after):
    entries = []
    for target in targets:
        info = None if after is None else after.get(target["address"])
        entries.append(dict(
            target,
            status=None if info is None else info.get("status"),
            retired=target["address"] in retired_addresses,
        ))
    return entries


def _outcome(close_workers, remove):
    if remove and close_workers:
        return "removed from the scheduler and told to close"
    if remove:
        return "removed from the scheduler (they close themselves at their next heartbeat)"
    if close_workers:
        return "told to close"
    return "left running in status closing_gracefully (no new tasks, no data of their own)"


def _left_as(worker, after):
    """How a worker Dask did not retire was left, for messages."""
    if after is None:
        return "%s was left as it was (its status could not be read again)" % worker["name"]
    if worker["status"] is None:
        return "%s is no longer registered" % worker["name"]
    return "%s is %s, with its data" % (worker["name"], worker["status"])


def changed_status(workers):
    """Whether a worker that was not retiring is retiring (or gone) now: a change on the cluster."""
    return any(w["status"] != w["status_before"] and w["status_before"] != RETIRING for w in workers)


def judge(address, targets, not_registered, answer, before, after, close_workers, remove):
    """Compare Dask's answer and the workers' status after with what was asked.

    ``answer`` is retire_workers()'s dict (address -> identity of each worker retired), ``before``
    and ``after`` identity()'s workers read before and after (``after`` is ``None`` when it could
    not be read). Returns ``(result, problems, warnings)``; ``result`` has every return value but
    ``changed`` and ``msg``.
    """
    # Dask retires by name and answers by address; should a worker have been restarted under the
    # same name since it was looked up, the answer has the new address.
    answered = dict((str(info.get("name", a)), a) for a, info in answer.items())
    targets = [dict(t, address=answered.get(t["name"], t["address"])) for t in targets]
    workers = _worker_entries(targets, set(answered.values()), after)
    retired = [w["name"] for w in workers if w["retired"]]
    failed = [w for w in workers if not w["retired"]]
    requested = set(t["name"] for t in targets)
    problems, warnings = [], []

    if failed:
        failed_names = _names([w["name"] for w in failed])
        stopped_some = retired and (close_workers or remove)
        problems.append(
            "Dask could not retire %s through the scheduler at %s: %s. Dask gives up on a worker when it is the "
            "last one, when every other worker is paused or retiring, or when it holds actors. %s: %s."
            % (failed_names, address, why_not(before, requested),
               "%s %s not stopped" % (failed_names, "was" if len(failed) == 1 else "were") if stopped_some
               else "Nothing was stopped",
               "; ".join(_left_as(w, after) for w in failed))
        )
    if after is None:
        problems.append(
            "Dask reported %s retired, but the scheduler at %s could not be read again to check their status."
            % (_names(retired), address)
        )
    elif not close_workers and not remove:
        for w in workers:
            if not w["retired"]:
                continue
            if w["status"] is None:
                warnings.append(
                    "Worker %s was retired (its data was moved) but has left the cluster since." % w["name"]
                )
            elif w["status"] != RETIRING:
                problems.append(
                    "Dask reported %s retired but the scheduler at %s now shows it %s, not closing_gracefully: "
                    "something else changed its status (another retirement that gave up?). Retire it again before "
                    "stopping it." % (w["name"], address, w["status"])
                )

    result = {
        "retired": retired,
        "retired_addresses": [w["address"] for w in workers if w["retired"]],
        "not_retired": [w["name"] for w in failed],
        "not_registered": list(not_registered),
        "workers": workers,
    }
    return result, problems, warnings


def empty_result(not_registered=()):
    return {
        "retired": [],
        "retired_addresses": [],
        "not_retired": [],
        "not_registered": list(not_registered),
        "workers": [],
    }


# Worker task states that mean "running user code now" (from the heartbeat metrics).
_EXECUTING = ("executing", "long-running")


async def _wait_until_idle(remote, addresses, deadline):
    """Wait until the workers at ``addresses`` execute no task; return those still busy.

    A retiring worker finishes the tasks it is executing but starts none of those queued on
    it (they go to other workers when it leaves): wait for the first kind only. The counts
    come with heartbeats, so two idle readings a heartbeat apart are required.
    """
    idle_readings = 0
    while True:
        workers = (await remote.identity()).get("workers", {})
        busy = [a for a in addresses
                if sum(((workers.get(a) or {}).get("metrics") or {}).get("task_counts", {}).get(s, 0)
                       for s in _EXECUTING)]
        idle_readings = 0 if busy else idle_readings + 1
        if idle_readings >= 2 or time.monotonic() >= deadline:
            return busy
        await asyncio.sleep(_HEARTBEAT_WAIT)


async def retire_workers(address, conn_args, names, close_workers=False, remove=False, timeout=300.0,
                         connect_timeout=10.0, missing_ok=False, check_mode=False, wait_for_tasks=True,
                         capacity=None):
    """Retire the workers called ``names`` and check it. Returns ``(ok, result)``; ``result`` has
    every return value of the module, ``changed`` and ``msg`` included, and ``warnings``.

    ``capacity``, a ``(pause_fraction, margin)`` pair, refuses first when the other running
    workers have no room for what the workers hold alone (``capacity_problem``).

    Reading before and after is bounded by ``connect_timeout`` each, the retirement by ``timeout``.
    Raises DaskCommError when the scheduler cannot be read before retiring (nothing happened then).
    """
    names = list(dict.fromkeys(names))
    before, unique = await call_scheduler(
        address, lambda remote: read_before(remote, names, close_workers, remove), "read the registered workers",
        connect_timeout, conn_args,
    )

    targets, not_registered, pending = plan(names, before, close_workers, remove, unique)
    if not_registered and not missing_ok:
        return False, dict(
            empty_result(not_registered), changed=False, warnings=[],
            msg="Workers not registered with the scheduler at %s: %s (registered: %s). Nothing was retired. "
                "Use the names the workers were started with (--name), or set missing_ok=true to skip workers "
                "that are already gone." % (address, _names(not_registered), describe(before)),
        )
    skipped = " Not registered, skipped: %s." % _names(not_registered) if not_registered else ""
    if not targets:
        return True, dict(
            empty_result(not_registered), changed=False, warnings=[],
            msg="None of the workers %s is registered with the scheduler at %s: nothing to retire."
                % (_names(names), address),
        )

    target_names = [t["name"] for t in targets]
    if capacity and pending:
        unique_bytes = await call_scheduler(
            address, lambda remote: read_unique_bytes(remote, [t["address"] for t in pending]),
            "read what the workers hold", connect_timeout, conn_args,
        )
        problem = capacity_problem(pending, before, unique_bytes, *capacity)
        if problem:
            workers = [dict(t, status=t["status_before"], retired=False) for t in targets]
            return False, dict(empty_result(not_registered), workers=workers, not_retired=target_names,
                               changed=False, warnings=[], msg=problem)
    if check_mode:
        workers = [dict(t, status=t["status_before"], retired=False) for t in targets]
        return True, dict(
            retired=target_names, retired_addresses=[t["address"] for t in targets], not_retired=[],
            not_registered=not_registered, workers=workers, changed=bool(pending), warnings=[],
            msg="Would retire %s through the scheduler at %s%s.%s" % (
                _names(target_names), address,
                "" if pending else " (already retired and holding no data of their own: no change)", skipped),
        )

    # Shows in the scheduler's log ("Retired worker ... (stimulus_id=...)") and in its events.
    stimulus_id = "dataplatform.dask.retire_workers-%f" % time.time()
    started = time.monotonic()

    def retire(remote):
        # call_scheduler allows ``timeout`` for connecting and answering together.
        budget = max(timeout - (time.monotonic() - started), 0.1)
        return _retire(remote, target_names, close_workers, remove, budget, stimulus_id)

    comm_problem = None
    try:
        answer = await call_scheduler(address, retire, "retire workers %s" % _names(target_names), timeout, conn_args)
    except DaskCommError as exc:
        answer, comm_problem = None, exc.message

    try:
        after = await call_scheduler(
            address, lambda remote: _read_after(remote, targets, None if answer is None else set(answer), connect_timeout),
            "read the workers' status after retiring", connect_timeout, conn_args,
        )
    except DaskCommError:
        after = None

    if answer is None:
        workers = _worker_entries(targets, set(), after)
        now = "; ".join("%s is %s" % (w["name"], w["status"] or "unknown") for w in workers)
        if comm_problem:
            msg = ("%s Whether the scheduler began to retire %s is unknown; this module stopped nothing. Now: %s."
                   % (comm_problem, _names(target_names), now))
        else:
            then = "remove them" if remove else ("close them" if close_workers else "leave them running")
            msg = ("The scheduler at %s had not finished retiring %s after %s s. It goes on moving their data "
                   "(the workers stay closing_gracefully and get no new tasks) and will then %s; nothing was "
                   "stopped by this module. Now: %s. Run again with a larger timeout: retiring workers that are "
                   "already retiring is safe." % (address, _names(target_names), timeout, then, now))
        return False, dict(empty_result(not_registered), workers=workers, changed=changed_status(workers),
                           warnings=[], msg=msg)

    result, problems, warnings = judge(address, targets, not_registered, answer, before, after, close_workers, remove)
    pending_names = set(t["name"] for t in pending)
    result["changed"] = any(name in pending_names for name in result["retired"]) or changed_status(result["workers"])
    result["warnings"] = warnings
    if problems:
        if result["retired"]:
            problems.append("Retired meanwhile, %s: %s." % (_outcome(close_workers, remove), _names(result["retired"])))
        result["msg"] = " ".join(problems) + skipped
        return False, result
    if wait_for_tasks and not (close_workers or remove) and result["retired"]:
        # Tasks already executing on a retired worker finish there, and their results would
        # live only there: wait for them, then retire again, which moves those results.
        busy = await call_scheduler(
            address, lambda remote: _wait_until_idle(remote, result["retired_addresses"], started + timeout),
            "wait for the retired workers' tasks", timeout, conn_args,
        )
        if busy:
            result["msg"] = ("Retired %s through the scheduler at %s, but after %s s tasks were still executing on %s; "
                             "nothing was stopped. Run again with a larger timeout." % (
                                 _names(result["retired"]), address, timeout, ", ".join(busy)))
            return False, result
        ok, again = await retire_workers(address, conn_args, names, timeout=max(timeout - (time.monotonic() - started), 1),
                                         connect_timeout=connect_timeout, missing_ok=missing_ok, wait_for_tasks=False)
        again["changed"] = result["changed"] or again["changed"]
        again["not_registered"] = not_registered
        first_status = dict((w["name"], w["status_before"]) for w in result["workers"])
        for worker in again["workers"]:
            worker["status_before"] = first_status.get(worker["name"], worker["status_before"])
        if ok:
            again["msg"] = ("Retired %s through the scheduler at %s: they run no task and their data is on other "
                            "workers; they were left running, to be stopped.%s" % (_names(again["retired"]), address, skipped))
            if not again["changed"]:
                again["msg"] += " They were already retired and held no data of their own: no change."
        return ok, again
    result["msg"] = "Retired %s through the scheduler at %s: their data is on other workers; they were %s.%s" % (
        _names(result["retired"]), address, _outcome(close_workers, remove), skipped)
    if not result["changed"]:
        result["msg"] += " They were already retired and held no data of their own: no change."
    return True, result
