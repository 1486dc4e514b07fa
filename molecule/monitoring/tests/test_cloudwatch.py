"""The CloudWatch publisher: under a known load its datapoints in the scenario's moto
server match the cluster's real state; it is a hardened unit of its own and its failures
stay its own."""

import json
import os
import time

import boto3
import pytest
from conftest import MOTO, SCHEDULER, DASK_PYTHON, cluster_health, ip_of, wait_until

from helpers import get_host

PUBLISHER = "dask-cloudwatch-publisher"
SCRIPT = "python3 /usr/local/lib/dask-monitoring/dask_cloudwatch_publisher.py"
CONFIG = "/etc/dask-monitoring/cloudwatch-publisher.json"
THREADS = 4  # 2 workers x dask_worker_nthreads 2
TASKS = 10
WORKER_MEMORY = 2 * 2048 * 2**20  # 2 workers x dask_worker_memory_limit_mb 2048


@pytest.fixture(scope="module")
def cloudwatch():
    return boto3.client("cloudwatch", endpoint_url=f"http://{ip_of(MOTO)}:5000", region_name="us-west-2",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def dry_run():
    return json.loads(get_host(SCHEDULER).check_output(f"{SCRIPT} --config {CONFIG} --dry-run"))


@pytest.fixture
def load():
    """TASKS tasks of 60 s on the cluster's THREADS threads, held by a client on the scheduler host."""
    host = get_host(SCHEDULER)
    with open(os.path.join(os.path.dirname(__file__), "load_client.py")) as f:
        source = f.read()
    host.check_output(f"rm -rf /root/load && mkdir /root/load && cat > /root/load/client.py <<'EOF'\n{source}\nEOF")
    host.check_output(
        f"nohup {DASK_PYTHON} /root/load/client.py tls://{ip_of(SCHEDULER)}:8786 {TASKS} 60 /root/load/ready "
        ">/root/load/log 2>&1 & echo $! >/root/load/pid"
    )
    wait_until(lambda: host.file("/root/load/ready").exists, 60, what="the load client submitting its tasks")
    yield
    host.run("kill $(cat /root/load/pid)")


def statistics(cloudwatch, name, since):
    points = cloudwatch.get_metric_statistics(
        Namespace="Dask/Cluster", MetricName=name, Dimensions=[{"Name": "ClusterName", "Value": "dask-mon"}],
        StartTime=since, EndTime=time.time() + 120, Period=60, Statistics=["Minimum", "Maximum", "SampleCount"],
    )["Datapoints"]
    return (min(p["Minimum"] for p in points), max(p["Maximum"] for p in points)) if points else None


def test_the_datapoints_match_the_clusters_state_under_a_known_load(load, cloudwatch):
    # Every thread sleeps; what does not fit waits (queued on the scheduler, ready on a worker).
    expected = {"ClusterUtilization": 100.0, "QueuedTasks": TASKS - THREADS, "Workers": 2, "Threads": THREADS}
    wait_until(lambda: all(dry_run()[k] == v for k, v in expected.items()), 60, what=f"the figures {expected}")
    since = time.time() - 1
    get_host(SCHEDULER).check_output(f"systemctl start {PUBLISHER}.service")

    assert statistics(cloudwatch, "ClusterUtilization", since) == (100.0, 100.0)
    assert statistics(cloudwatch, "QueuedTasks", since) == (TASKS - THREADS, TASKS - THREADS)
    workers = cluster_health()["worker_count"]
    assert statistics(cloudwatch, "Workers", since) == (workers, workers) == (2, 2)
    low, high = statistics(cloudwatch, "MemoryUsed", since)
    assert 50 * 2**20 < low <= high < WORKER_MEMORY
    low_pct, high_pct = statistics(cloudwatch, "MemoryUtilization", since)
    assert 100 * low / WORKER_MEMORY - 1 < low_pct <= high_pct < 100 * high / WORKER_MEMORY + 1
    # The scheduler host's certificate (a year) expires before the CA (ten years).
    low, high = statistics(cloudwatch, "CertificateDaysLeft", since)
    assert 360 < low <= high <= 365


def test_the_timer_publishes_on_its_own(cloudwatch):
    host = get_host(SCHEDULER)
    timer = host.service(f"{PUBLISHER}.timer")
    assert timer.is_enabled and timer.is_running
    assert "OnUnitActiveUSec=1min " in host.check_output(f"systemctl show -p TimersMonotonic {PUBLISHER}.timer")
    since = time.time() - 1
    # OnUnitActiveSec=60s: a new datapoint arrives within a minute, without anyone asking.
    wait_until(lambda: statistics(cloudwatch, "Workers", since), 90, interval=5, what="a datapoint from the timer")


def test_the_publisher_is_a_hardened_unit_without_keys_on_disk_for_others():
    host = get_host(SCHEDULER)
    properties = host.service(f"{PUBLISHER}.service").systemd_properties
    assert properties["DynamicUser"] == "yes"
    assert properties["NoNewPrivileges"] == "yes"
    assert properties["ProtectSystem"] == "strict"
    assert properties["ProtectHome"] == "yes"
    assert properties["PrivateTmp"] == "yes"
    assert properties["MemoryMax"] == str(256 * 2**20)
    environment = host.file("/etc/dask-monitoring/cloudwatch-publisher.env")
    assert (environment.user, environment.group, environment.mode) == ("root", "root", 0o600)


def test_a_failing_publication_is_logged_and_leaves_the_scheduler_alone():
    host = get_host(SCHEDULER)
    host.check_output(f"jq '.endpoint_url = \"http://{MOTO}:1\"' {CONFIG} >/root/bad.json"
                      if host.exists("jq") else
                      f"python3 -c \"import json; c = json.load(open('{CONFIG}')); c['endpoint_url'] = 'http://{MOTO}:1'; "
                      "json.dump(c, open('/root/bad.json', 'w'))\"")
    run = host.run(f"AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y AWS_MAX_ATTEMPTS=1 {SCRIPT} --config /root/bad.json")
    assert run.rc == 1
    assert "CloudWatch refused or could not be reached" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert host.service("dask-scheduler.service").is_running
