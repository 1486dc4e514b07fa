# -*- coding: utf-8 -*-
"""The CloudWatch publisher of dask_monitoring (roles/dask_monitoring/files): its figures
from a real in-process scheduler under a known load, its parsing and judging rules, and
what it puts into CloudWatch (moto's in-process CloudWatch)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[5] / "roles" / "dask_monitoring" / "files" / "dask_cloudwatch_publisher.py"
spec = importlib.util.spec_from_file_location("dask_cloudwatch_publisher", SCRIPT)
publisher = importlib.util.module_from_spec(spec)
spec.loader.exec_module(publisher)


def worker(status="running", nthreads=2, executing=0, ready=0, memory=0, limit=1000):
    return {"status": status, "nthreads": nthreads, "memory_limit": limit,
            "metrics": {"memory": memory, "task_counts": {"executing": executing, "ready": ready}}}


def identity(*workers):
    return {"workers": {"tcp://10.0.0.%d:4000" % i: w for i, w in enumerate(workers)}}


def test_figures_of_a_half_busy_cluster():
    figures = publisher.cluster_figures(
        identity(worker(executing=2, ready=1, memory=300), worker(executing=0, memory=100)),
        {"queued": 4.0, "no-worker": 1.0, "processing": 3.0},
    )
    assert figures == {"ClusterUtilization": 50.0, "QueuedTasks": 6, "Workers": 2, "BusyThreads": 2, "Threads": 4,
                       "MemoryUsed": 400, "MemoryUtilization": 20.0}


def test_a_paused_worker_counts_as_busy_and_a_retiring_one_not_at_all():
    figures = publisher.cluster_figures(
        identity(worker(status="paused"), worker(executing=1), worker(status="closing_gracefully", executing=2)), {}
    )
    assert (figures["Workers"], figures["Threads"], figures["BusyThreads"]) == (2, 4, 3)
    assert figures["ClusterUtilization"] == 75.0


@pytest.mark.parametrize("queued, utilization", [(0, 0.0), (3, 100.0)])
def test_no_worker_is_idle_without_work_and_saturated_with_it(queued, utilization):
    figures = publisher.cluster_figures(identity(), {"queued": float(queued)})
    assert (figures["ClusterUtilization"], figures["QueuedTasks"], figures["Workers"]) == (utilization, queued, 0)


def test_metrics_without_prometheus_client_are_an_error_not_an_empty_cluster():
    # What Dask serves on /metrics when prometheus_client is not installed (status 200).
    text = "# Prometheus metrics are not available, see: https://docs.dask.org/...\n"
    with pytest.raises(publisher.PublisherError, match="prometheus-client is missing"):
        publisher.scheduler_task_counts(text)


def test_prometheus_text_is_parsed_with_labels_and_comments():
    text = ('# HELP dask_scheduler_tasks Number of tasks\n# TYPE dask_scheduler_tasks gauge\n'
            'dask_scheduler_tasks{state="queued"} 7.0\ndask_scheduler_tasks{state="no-worker"} 1.0\n'
            'dask_scheduler_clients 2.0\nother{a="x\\"y",b="z"} 3 1700000000\n')
    samples = publisher.parse_prometheus(text)
    assert samples[("other", (("a", 'x\\"y'), ("b", "z")))] == 3.0
    assert publisher.scheduler_task_counts(text) == {"queued": 7.0, "no-worker": 1.0}


def test_metric_data_has_the_cluster_dimension_and_units():
    figures = publisher.cluster_figures(identity(worker(executing=1, memory=10)), {})
    data = publisher.metric_data(figures, "prod")
    assert {d["MetricName"]: (d["Value"], d["Unit"]) for d in data} == {
        "ClusterUtilization": (50.0, "Percent"), "QueuedTasks": (0.0, "Count"), "Workers": (1.0, "Count"),
        "MemoryUsed": (10.0, "Bytes"), "MemoryUtilization": (1.0, "Percent")}
    assert all(d["Dimensions"] == [{"Name": "ClusterName", "Value": "prod"}] for d in data)


def test_certificate_days_left_is_the_soonest_expiry_of_the_textfile():
    text = ('# TYPE dask_tls_certificate_not_after_seconds gauge\n'
            'dask_tls_certificate_not_after_seconds{certificate="ca"} 1000864000\n'
            'dask_tls_certificate_not_after_seconds{certificate="host"} 1000172800\n')
    assert publisher.certificate_days_left(text, 1000000000) == 2.0
    assert publisher.certificate_days_left("# nothing\n", 1000000000) is None
    data = publisher.metric_data({"CertificateDaysLeft": 2.0}, "prod")
    assert [(d["MetricName"], d["Value"], d["Unit"]) for d in data] == [("CertificateDaysLeft", 2.0, "None")]


def sleepy(i, seconds):
    time.sleep(seconds)
    return i


def dashboard_url(cluster):
    return "http://127.0.0.1:%d" % cluster.scheduler.http_server.port


def figures_when(cluster, wanted, timeout=30):
    """The figures once they match ``wanted`` (worker heartbeats carry the task counts)."""
    deadline = time.monotonic() + timeout
    while True:
        figures = publisher.cluster_figures(*publisher.read_scheduler(dashboard_url(cluster)))
        if all(figures[k] == v for k, v in wanted.items()) or time.monotonic() > deadline:
            return figures
        time.sleep(0.3)


def test_a_real_scheduler_full_then_idle(make_cluster):
    from distributed import Client

    cluster = make_cluster()
    cluster.add_worker("w1")
    cluster.add_worker("w2")  # one thread each
    with Client(cluster.address, timeout=30) as client:
        futures = client.map(sleepy, range(7), seconds=15)
        # 2 threads busy; 5 tasks wait: 1 ready on each worker, 3 queued on the scheduler.
        full = {"ClusterUtilization": 100.0, "QueuedTasks": 5, "Workers": 2, "Threads": 2, "BusyThreads": 2}
        figures = figures_when(cluster, full)
        assert {k: figures[k] for k in full} == full
        assert figures["MemoryUsed"] > 0 and 0 < figures["MemoryUtilization"] < 100
        client.cancel(futures)
        # A cancelled task's thread is busy until the function returns (Python cannot stop it).
        idle = {"ClusterUtilization": 0.0, "QueuedTasks": 0, "Workers": 2}
        figures = figures_when(cluster, idle, timeout=45)
        assert {k: figures[k] for k in idle} == idle


def test_main_prints_the_figures_of_a_real_scheduler(make_cluster, tmp_path, capsys):
    cluster = make_cluster()
    cluster.add_worker("w1")
    config = tmp_path / "publisher.json"
    config.write_text(json.dumps({"dashboard_url": dashboard_url(cluster), "namespace": "Dask/Cluster",
                                  "cluster_name": "test", "region": "us-west-2"}))
    assert publisher.main(["--config", str(config), "--dry-run"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["Workers"], figures["Threads"], figures["ClusterUtilization"]) == (1, 1, 0.0)
    assert "CertificateDaysLeft" not in figures  # no certificate_file

    textfile = tmp_path / "dask_tls.prom"
    textfile.write_text('dask_tls_certificate_not_after_seconds{certificate="host"} %d\n' % (time.time() + 86400 * 10))
    config.write_text(json.dumps({"dashboard_url": dashboard_url(cluster), "namespace": "Dask/Cluster",
                                  "cluster_name": "test", "region": "us-west-2", "certificate_file": str(textfile)}))
    assert publisher.main(["--config", str(config), "--dry-run"]) == 0
    assert 9.9 < json.loads(capsys.readouterr().out)["CertificateDaysLeft"] <= 10.0


def test_an_unreachable_scheduler_is_logged_not_raised(tmp_path, caplog):
    config = tmp_path / "publisher.json"
    config.write_text(json.dumps({"dashboard_url": "http://127.0.0.1:9", "namespace": "Dask/Cluster",
                                  "cluster_name": "test", "region": "us-west-2"}))
    assert publisher.main(["--config", str(config)]) == 1
    assert "Could not read http://127.0.0.1:9/json/identity.json" in caplog.text


def test_the_figures_arrive_in_cloudwatch(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    figures = publisher.cluster_figures(identity(worker(executing=2, ready=3), worker(executing=1)), {"queued": 2.0})
    figures["CertificateDaysLeft"] = 364.5
    config = {"namespace": "Dask/Cluster", "cluster_name": "prod", "region": "us-west-2"}
    with moto.mock_aws():
        client = boto3.client("cloudwatch", region_name="us-west-2")
        publisher.publish(figures, config, client)
        metrics = client.list_metrics(Namespace="Dask/Cluster")["Metrics"]
        assert sorted(m["MetricName"] for m in metrics) == sorted(publisher.UNITS)
        stats = client.get_metric_statistics(
            Namespace="Dask/Cluster", MetricName="ClusterUtilization",
            Dimensions=[{"Name": "ClusterName", "Value": "prod"}], StartTime=time.time() - 600,
            EndTime=time.time() + 60, Period=60, Statistics=["Maximum"])
        assert [p["Maximum"] for p in stats["Datapoints"]] == [75.0]


def test_a_cloudwatch_refusal_is_a_sentence():
    class Refusing:
        def put_metric_data(self, **kwargs):
            raise RuntimeError("AccessDenied")

    with pytest.raises(publisher.PublisherError, match="Check the instance role"):
        publisher.publish(publisher.cluster_figures(identity(), {}), {"namespace": "N", "cluster_name": "c"}, Refusing())
