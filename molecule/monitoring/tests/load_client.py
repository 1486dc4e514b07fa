"""A user's load on the cluster: N tasks that each sleep S seconds, submitted at once and
held until this process ends. Runs on the scheduler host with the cluster's own Dask
(its configuration in /etc/dask gives the TLS client certificate).

    python load_client.py ADDRESS N SECONDS READY_FILE
"""

import sys
import time

from distributed import Client


def nap(i, seconds):
    time.sleep(seconds)
    return i


def main(address, n, seconds, ready):
    with Client(address, timeout=30) as client:
        futures = client.map(nap, range(n), seconds=seconds, pure=False)
        open(ready, "w").close()
        time.sleep(seconds * 3)
        del futures


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
