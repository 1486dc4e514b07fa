"""Example computation for `make demo`: runs on the scheduler host with the
cluster's own Dask venv, spreads tasks over every worker and checks the result."""

import sys
import time
from collections import Counter

from distributed import Client, get_worker


def partial_sum(start, stop):
    time.sleep(0.2)  # long enough that both workers get a share
    return get_worker().name, sum(i * i for i in range(start, stop))


def main(address, expected_workers, n=10_000_000, chunks=40):
    with Client(address, timeout=30) as client:
        client.wait_for_workers(expected_workers, timeout=120)
        step = n // chunks
        futures = [client.submit(partial_sum, i, i + step, pure=False) for i in range(0, n, step)]
        results = client.gather(futures)
    total = sum(value for worker, value in results)
    expected = (n - 1) * n * (2 * n - 1) // 6
    per_worker = Counter(worker for worker, value in results)
    print(f"sum of squares below {n:,} = {total:,}")
    print(f"computed locally         = {expected:,}  ({'match' if total == expected else 'MISMATCH'})")
    print("tasks per worker: " + ", ".join(f"{w}={c}" for w, c in sorted(per_worker.items())))
    if total != expected or len(per_worker) < expected_workers:
        sys.exit("the computation did not use every worker or gave a wrong result")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
