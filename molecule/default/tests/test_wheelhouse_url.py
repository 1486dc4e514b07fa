"""dask_common_wheelhouse_url: a host downloads the wheelhouse from a copy near it instead of
receiving it from the controller, and refuses a copy that is not the controller's archive.
The scheduler host stands in for the copy's server (S3 behind a VPC endpoint in production).
Runs last: it makes a worker install its release again."""

import glob
import os
import re
import subprocess

import pytest
from conftest import SCHEDULER, WORKERS, private_address, run_site
from helpers import PROJECT, current_environment, flat

WORKER = WORKERS[1]
SERVED = "/srv/wheelhouse"
PORT = 8800


@pytest.fixture(scope="module")
def wheelhouse_base(scheduler):
    """Serve the controller's archive and a wrong one from the scheduler host over HTTP."""
    # The archive of the environment the hosts run (its name carries the environment's id).
    [archive] = glob.glob(os.path.join(PROJECT, ".cache", "wheelhouse", f"dask-{current_environment(scheduler)}-py*.tar"))
    scheduler.run_expect([0], f"mkdir -p {SERVED}")
    subprocess.run(["docker", "cp", archive, f"{SCHEDULER}:{SERVED}/"], check=True)
    scheduler.run_expect([0], f"head -c 100000 /dev/urandom > {SERVED}/other.tar")
    address = private_address(scheduler)
    scheduler.run_expect(
        [0],
        f"systemd-run --unit wheelhouse-http /usr/bin/python3 -m http.server {PORT} --bind {address} --directory {SERVED}",
    )
    yield f"http://{address}:{PORT}", os.path.basename(archive)
    scheduler.run("systemctl stop wheelhouse-http")
    scheduler.run(f"rm -rf {SERVED}")


def record(worker):
    """The requirements record of the environment the current link points at."""
    return f"/opt/dask/venvs/{current_environment(worker)}/dask-requirements.txt"


def forget_the_install(worker):
    # Without its record the venv counts as incomplete: the next run installs again.
    worker.run_expect([0], f"rm -f {record(worker)}")


def test_a_worker_installs_from_the_wheelhouse_url(wheelhouse_base, workers):
    base, name = wheelhouse_base
    worker = workers[1]
    forget_the_install(worker)
    run = run_site("--limit", WORKER, "-e", f"dask_common_wheelhouse_url={base}/{name}")
    assert run.rc == 0, run.output[-3000:]
    out = flat(run.output)
    downloaded = rf"from dask_common_wheelhouse_url \(checked against the controller's archive\)\] \*+ changed: \[{WORKER}\]"
    assert re.search(downloaded, out), out[-3000:]
    assert re.search(rf"Unpack the wheelhouse from the controller\] \*+ skipping: \[{WORKER}\]", out), out[-3000:]
    assert worker.file(record(worker)).exists
    assert not worker.file(f"/opt/dask/wheelhouse/{name}").exists


def test_a_wheelhouse_url_with_another_archive_is_refused(wheelhouse_base, workers):
    base, _name = wheelhouse_base
    worker = workers[1]
    forget_the_install(worker)
    try:
        run = run_site("--limit", WORKER, "-e", f"dask_common_wheelhouse_url={base}/other.tar")
        assert run.rc != 0, run.output[-3000:]
        assert "checksum" in flat(run.output).lower(), run.output[-3000:]
        assert run.changed[WORKER] == 0, run.output[-3000:]
        assert not worker.file(record(worker)).exists
    finally:
        # Back to the controller's archive: the worker is whole again for any later test.
        run = run_site("--limit", WORKER)
        assert run.rc == 0, run.output[-3000:]


def test_a_wheelhouse_url_that_is_not_http_is_refused_before_any_change():
    run = run_site("--limit", WORKER, "-e", "dask_common_wheelhouse_url=s3://bucket/wheelhouse.tar")
    assert run.rc != 0, run.output[-3000:]
    assert "must be an http:// or https:// URL" in flat(run.output), run.output[-3000:]
    assert set(run.changed.values()) == {0}, run.output[-3000:]
