"""A user's session that lives through a rolling upgrade, a scale-in (any disruption).

Holds scattered and computed results on every worker, keeps submitting a steady
stream of small tasks, samples how many workers are running, and when told to stop
(a stop file appears) gathers every held result and reports, as one JSON document
in the result file, whether anything was lost:

    python session_client.py SCHEDULER_ADDRESS WORKDIR [WORKERS [LONG_TASK_UNTIL]]

With LONG_TASK_UNTIL (a path), a task that runs until that file exists on its host (at
most 10 minutes) is started on the first worker by name as well (pinned there); its result
is one of the held results.

WORKDIR/ready appears once the results are placed; create WORKDIR/stop to finish;
the report is WORKDIR/result.json. Runs with the cluster's own Dask.
"""

import hashlib
import json
import os
import sys
import threading
import time
import warnings

from distributed import Client, wait

PAYLOADS_PER_WORKER = 4
PAYLOAD_BYTES = 1 << 20
# Key collections of the scheduler's remove-worker event.
LOST_KEYS_FIELDS = ("processing-tasks", "lost-computed-tasks", "lost-scattered-tasks")


def make_payload(seed):
    """Deterministic bytes, recomputable anywhere."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < PAYLOAD_BYTES:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:PAYLOAD_BYTES])


def inc(x):
    return x + 1


def payload_when_released(seed, path):
    deadline = time.time() + 600
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.5)
    return make_payload(seed)


def registered_workers(client):
    """The scheduler's workers, asked now. Not Client.scheduler_info(): it returns the client's
    cached copy, which the client's own periodic poll (every 2 s) may replace, between the
    fetch and the return, with one that lists no worker at all."""
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


def running_workers(client):
    return sum(w.get("status") == "running" for w in registered_workers(client).values())


def main(address, workdir, n_workers, long_task_until=""):
    warnings.simplefilter("ignore")  # old/new release side by side prints version tables
    client = Client(address, timeout=30)
    client.wait_for_workers(n_workers, timeout=120)
    workers = list(registered_workers(client))

    # Results only one worker holds: scattered data, and computed data pinned to it.
    held, expected = {}, {}
    for i, worker in enumerate(workers):
        for j in range(PAYLOADS_PER_WORKER):
            seed = f"scattered-{i}-{j}"
            [held[seed]] = client.scatter([make_payload(seed)], workers=[worker], broadcast=False)
            seed = f"computed-{i}-{j}"
            held[seed] = client.submit(make_payload, seed, workers=[worker], allow_other_workers=True, pure=False)
    wait(list(held.values()))
    if long_task_until:
        first = min(workers, key=lambda address: str(registered_workers(client)[address]["name"]))
        held["long-task"] = client.submit(payload_when_released, "long-task", long_task_until, workers=[first],
                                          allow_other_workers=False, pure=False)
        expected["long-task"] = hashlib.sha256(make_payload("long-task")).hexdigest()
    for seed in held:
        expected.setdefault(seed, hashlib.sha256(make_payload(seed)).hexdigest())
    events_before = len(client.get_events("all"))

    stats = {"submitted": 0, "completed": 0, "failed": 0, "errors": [], "min_running_workers": len(workers),
             "timeline": []}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                n = running_workers(client)
            except Exception:  # a sample missed is not a worker lost
                n = None
            if n is not None:
                stats["min_running_workers"] = min(stats["min_running_workers"], n)
            stats["timeline"].append((time.time(), n, stats["completed"]))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    open(os.path.join(workdir, "ready"), "w").close()

    # The steady stream: small batches of independent tasks, each checked.
    n = 0
    while not os.path.exists(os.path.join(workdir, "stop")):
        futures = client.map(inc, range(n, n + 20), pure=False)
        stats["submitted"] += len(futures)
        for value, future in zip(range(n, n + 20), futures):
            try:
                ok = future.result(timeout=120) == value + 1
            except Exception as e:
                ok = False
                if len(stats["errors"]) < 5:
                    stats["errors"].append(f"{future.key}: {type(e).__name__}: {e}")
            stats["completed" if ok else "failed"] += 1
        n += 20
        time.sleep(0.1)
    stop.set()
    sampler.join()

    lost = {}
    for seed, future in held.items():
        try:
            digest = hashlib.sha256(future.result(timeout=60)).hexdigest()
            if digest != expected[seed]:
                lost[seed] = "different bytes"
        except Exception as e:
            lost[seed] = type(e).__name__
    events = client.get_events("all")[events_before:]
    removals = [msg for when, msg in events if msg.get("action") == "remove-worker"]
    versions = client.run(lambda: __import__("dask").__version__)
    report = {
        "held": len(held),
        "lost": lost,
        "removals": [
            {
                "worker": msg.get("worker"),
                "expected": msg.get("expected"),
                **{k: sorted(map(str, msg.get(k) or ())) for k in LOST_KEYS_FIELDS},
            }
            for msg in removals
        ],
        "worker_versions": sorted(versions.values()),
        **stats,
    }
    with open(os.path.join(workdir, "result.json.tmp"), "w") as f:
        json.dump(report, f, default=str)
    os.rename(os.path.join(workdir, "result.json.tmp"), os.path.join(workdir, "result.json"))
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3,
         sys.argv[4] if len(sys.argv) > 4 else "")
