"""Example computation for `make demo`, run as a data scientist's notebook would: on this
machine, outside the cluster, in a venv made from the client bundle (scripts/client_env.sh),
with the bundle's dask-tls.yaml (DASK_CONFIG). A dataframe groupby over every worker, checked
against pandas on the same data; a version mismatch between client and cluster is an error."""

import sys
import warnings

import dask
import pandas as pd
from distributed import Client, wait
from distributed.versions import VersionMismatchWarning


def main(address, expected_workers):
    warnings.simplefilter("error", VersionMismatchWarning)
    with Client(address, timeout=30) as client:
        client.wait_for_workers(expected_workers, timeout=120)
        df = dask.datasets.timeseries(start="2000-01-01", end="2000-01-31", freq="10s", seed=42).persist()
        wait(df)
        holders = [worker for worker, keys in client.has_what().items() if keys]
        means = df.groupby("name").x.mean().compute().sort_index()
        local = df.compute()
    expected = local.groupby("name").x.mean().sort_index()
    pd.testing.assert_series_equal(means, expected)
    print(f"mean of x per name over {len(local):,} rows (dask.dataframe groupby on the cluster):")
    print(means.head(5).to_string())
    print(f"... {len(means)} names, equal to pandas on the same data; partitions on {len(holders)} workers")
    if len(holders) < expected_workers:
        sys.exit("the computation did not use every worker")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
