"""A data scientist's session, run on the notebook host in a venv made only from a client bundle
(DASK_CONFIG = the bundle): puts a Parquet dataset in the data lake (the local S3), reads it
on the cluster with dask.dataframe, checks a groupby against pandas on the same data, and saves
the per-partition results to /shared/results from the workers. Prints a JSON summary.

    python data_client.py SCHEDULER_ADDRESS BUCKET RESULTS_DIR

The client's own S3 access (to write the dataset and read Parquet metadata) comes from its
environment; the workers use theirs: the hosts' instance role."""

import json
import os
import sys
import warnings

import dask.dataframe as dd
import numpy as np
import pandas as pd
import s3fs
from distributed import Client
from distributed.versions import VersionMismatchWarning

FILES = 6
ROWS = 100_000


def dataset():
    rng = np.random.default_rng(7)
    names = np.array(["alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi"])
    return [
        pd.DataFrame({"name": names[rng.integers(0, len(names), ROWS)], "x": rng.normal(size=ROWS),
                      "y": rng.integers(0, 1000, ROWS)})
        for _file in range(FILES)
    ]


def main(address, bucket, results_dir):
    warnings.simplefilter("error", VersionMismatchWarning)
    frames = dataset()
    fs = s3fs.S3FileSystem()
    if not fs.exists(bucket):
        fs.mkdir(bucket, region_name=os.environ["AWS_DEFAULT_REGION"])
    keys = []
    for i, frame in enumerate(frames):
        key = f"{bucket}/processed/events/part-{i}.parquet"
        with fs.open(key, "wb") as f:
            frame.to_parquet(f, index=False)
        keys.append(key)
    with Client(address, timeout=30) as client:
        df = dd.read_parquet(f"s3://{bucket}/processed/events/")
        means = df.groupby("name").x.mean().compute().sort_index()
        counts = df.groupby("name").y.count().compute().sort_index()
        # The client makes the directory (on /shared, which the notebook host mounts too).
        written = df.to_csv(f"{results_dir}/part-*.csv", index=False)
    local = pd.concat(frames, ignore_index=True)
    # Parquet gives the names as Arrow strings, pandas as its own: compare the values.
    pd.testing.assert_series_equal(means, local.groupby("name").x.mean().sort_index(), check_index_type=False)
    pd.testing.assert_series_equal(counts, local.groupby("name").y.count().sort_index(), check_index_type=False)
    json.dump({"keys": keys, "rows": len(local), "written": written,
               "partitions": int(df.npartitions)}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
