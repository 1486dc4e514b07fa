"""The data scientists' path, end to end, as a user meets it: a client venv made on the controller
only from the client bundle, run on the notebook host (which mounts /shared like every host), a
Parquet dataset in the data lake (the scenario's local S3), read by the workers with the hosts'
instance role, a groupby equal to pandas on the same data, and the results saved from the
workers to /shared, where every host reads them."""

import json
import os
import re
import subprocess

import pytest
from conftest import MOTO, SCHEDULER, WORKERS, ip_of

from helpers import PROJECT, flat, get_host, run_playbook

BUNDLE = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ca", "clients", "client")
CLIENT_VENV = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "client-venv")
NOTEBOOK = "dask-mon-notebook"
BUCKET = "lake"
RESULTS = "/shared/results/data-path"


@pytest.fixture(scope="module")
def client_python():
    """What the bundle's README tells a user to do, done by the project's own script."""
    subprocess.run([os.path.join(PROJECT, "scripts", "client_env.sh"), BUNDLE, CLIENT_VENV], check=True)
    return os.path.join(CLIENT_VENV, "bin", "python")


@pytest.fixture(scope="module")
def session(client_python):
    get_host(SCHEDULER).check_output(f"rm -rf {RESULTS}")
    # Only what a user's notebook has: the bundle's configuration and the client's own S3 access.
    env = {
        "HOME": "/tmp",
        "DASK_CONFIG": BUNDLE,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ENDPOINT_URL_S3": f"http://{MOTO}:5000",
    }
    run = subprocess.run(
        # umask 002: the directory the client makes in results/ (setgid, group dask) lets the workers write.
        ["docker", "exec", *(f"--env={name}={value}" for name, value in env.items()), NOTEBOOK,
         "sh", "-c", 'umask 002 && exec "$@"', "-", client_python, "/opt/tests/data_client.py", f"tls://{ip_of(SCHEDULER)}:8786", BUCKET, RESULTS],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    return json.loads(run.stdout), run.stderr


def test_the_bundle_carries_the_clusters_lock_and_how_to_connect():
    with open(os.path.join(BUNDLE, "requirements.txt")) as f:
        requirements = f.read()
    for name in [SCHEDULER, *WORKERS]:
        installed = get_host(name).check_output("cat /opt/dask/venvs/current/dask-requirements.txt")
        assert installed.strip() == requirements.strip(), name
    for package in ["dask==", "distributed==", "pandas==", "pyarrow==", "s3fs==", "cloudpickle==", "msgpack==", "tornado=="]:
        assert re.search(rf"^{package}", requirements, re.M), package
    with open(os.path.join(BUNDLE, "README.md")) as f:
        readme = f.read()
    for expected in [f"tls://{ip_of(SCHEDULER)}:8786", "pip install -r requirements.txt", "--no-index --find-links",
                     "dask-tls.yaml", f"https://{ip_of(SCHEDULER)}:8787/status", "/shared/results"]:
        assert expected in readme, expected


def test_a_dataframe_from_s3_equals_pandas_with_no_version_mismatch(session):
    summary, stderr = session
    assert summary["rows"] == 6 * 100_000 and summary["partitions"] >= 6
    # data_client.py makes the warning an error too; this catches it printed by a worker or nanny.
    assert "Mismatched versions" not in stderr and "VersionMismatchWarning" not in stderr, stderr[-3000:]


def test_the_workers_read_s3_with_the_instance_role(session):
    summary = session[0]
    log = subprocess.run(["docker", "logs", MOTO], capture_output=True, text=True, check=True)
    # werkzeug's request log; it colours some status lines.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log.stdout + log.stderr)
    requests = re.findall(r'^(\S+) - - \[[^]]*\] "(GET|PUT|HEAD) (\S+) HTTP', plain, re.M)
    worker_ips = {ip_of(name) for name in WORKERS}
    readers = {key: {ip for ip, method, path in requests if method == "GET" and path.startswith(f"/{key}")}
               for key in summary["keys"]}
    # Every file's data was fetched by a worker (the client reads only the footers, if at all).
    assert all(ips & worker_ips for ips in readers.values()), readers
    # With the credentials the metadata service hands an instance role: no keys on the hosts.
    role_fetchers = {ip for ip, method, path in requests if path.startswith("/latest/meta-data/iam/security-credentials/")}
    assert worker_ips <= role_fetchers, role_fetchers
    for name in WORKERS:
        unit = get_host(name).check_output("systemctl cat dask-worker.service")
        assert "AWS_ENDPOINT_URL_S3=" in unit and "AWS_ACCESS_KEY_ID" not in unit and "AWS_SECRET" not in unit


def test_the_workers_results_on_shared_are_the_dask_users_and_seen_by_every_host(session):
    summary = session[0]
    assert summary["written"] and all(path.startswith(RESULTS + "/") for path in summary["written"])
    expected_lines = summary["rows"] + len(summary["written"])  # one header per file
    owners = get_host(SCHEDULER).check_output(f"stat -c %U {' '.join(summary['written'])}").split()
    assert set(owners) == {"dask"}, owners
    for name in [SCHEDULER, *WORKERS, NOTEBOOK]:
        assert int(get_host(name).check_output(f"cat {RESULTS}/*.csv | wc -l")) == expected_lines, name


def test_the_sandbox_opens_exactly_the_shared_directory():
    for name in WORKERS:
        props = get_host(name).service("dask-worker").systemd_properties
        assert "/shared" in props["ReadWritePaths"].split() and props["ProtectSystem"] == "strict", props["ReadWritePaths"]
        assert "/shared" in props["RequiresMountsFor"].split(), props.get("RequiresMountsFor")


def test_unmounting_shared_under_a_running_worker_is_refused():
    run = run_playbook(os.path.join(os.path.dirname(__file__), "unmount_shared.yml"))
    assert run.rc != 0, run.output[-3000:]
    assert "dask-worker.service on dask-mon-worker-1 run with /shared" in flat(run.output), run.output[-3000:]
    assert run.changed == {"dask-mon-worker-1": 0}, run.output[-3000:]
    assert get_host("dask-mon-worker-1").mount_point("/shared").exists
