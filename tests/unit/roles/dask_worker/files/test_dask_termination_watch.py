# -*- coding: utf-8 -*-
"""The termination watch of dask_worker (roles/dask_worker/files): how it reads AWS's
announcements from an IMDSv2 metadata service (a real HTTP server in the test), and that
it retires the worker on a real in-process cluster *before* it lets the Auto Scaling
group terminate the instance. The Auto Scaling API is a recorder here (moto does not
run lifecycle hooks); the fleet scenario runs the whole path on containers."""

from __future__ import annotations

import importlib.util
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from inprocess import wait_until

pytest.importorskip("distributed", reason="the watch retires a real Dask worker: install dask[distributed]")

SCRIPT = Path(__file__).resolve().parents[5] / "roles" / "dask_worker" / "files" / "dask_termination_watch.py"
spec = importlib.util.spec_from_file_location("dask_termination_watch", SCRIPT)
watch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(watch)


class MetadataService:
    """An instance's metadata service, version 2: a token from PUT, then GETs carrying it."""

    def __init__(self):
        self.pages = {"instance-id": "i-0123456789abcdef0", "autoscaling/target-lifecycle-state": "InService"}
        self.tokens = set()
        self.reads = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body=""):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_PUT(self):
                if self.path != "/latest/api/token" or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
                    return self.answer(400)
                token = secrets.token_hex(8)
                service.tokens.add(token)
                return self.answer(200, token)

            def do_GET(self):
                if self.headers.get("X-aws-ec2-metadata-token") not in service.tokens:
                    return self.answer(401)
                service.reads += 1
                page = service.pages.get(self.path[len("/latest/meta-data/"):])
                return self.answer(404) if page is None else self.answer(200, page)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def metadata():
    service = MetadataService()
    yield service
    service.close()


class AutoScaling:
    """Records CompleteLifecycleAction, with what the cluster looked like at that moment."""

    def __init__(self, cluster, data, name):
        self.cluster, self.data, self.name = cluster, data, name
        self.completed = []

    def describe_auto_scaling_instances(self, InstanceIds):
        return {"AutoScalingInstances": [{"InstanceId": i, "AutoScalingGroupName": "dask-cluster-workers"}
                                         for i in InstanceIds]}

    def describe_lifecycle_hooks(self, AutoScalingGroupName):
        return {"LifecycleHooks": [
            {"LifecycleHookName": "dask-cluster-retire-worker", "LifecycleTransition": watch.TERMINATING},
            {"LifecycleHookName": "bootstrap", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"},
        ]}

    def complete_lifecycle_action(self, **action):
        holders = self.data.holders()
        self.completed.append(dict(action, status=self.cluster.status_of(self.name),
                                   still_held_here=[k for k, where in holders.items() if self.name in where]))


def test_no_announcement_while_the_instance_is_in_service(metadata):
    reader = watch.Metadata(metadata.endpoint)
    assert watch.announcement(reader) is None
    assert reader.get("spot/instance-action") is None  # 404: no notice


def test_the_group_terminating_the_instance_is_an_announcement(metadata):
    metadata.pages["autoscaling/target-lifecycle-state"] = "Terminated"
    assert watch.announcement(watch.Metadata(metadata.endpoint)) == "lifecycle"


def test_a_spot_interruption_notice_is_an_announcement(metadata):
    metadata.pages["spot/instance-action"] = json.dumps({"action": "terminate", "time": "2026-12-07T16:00:00Z"})
    assert watch.announcement(watch.Metadata(metadata.endpoint)) == "spot"


def test_an_expired_token_is_replaced(metadata):
    reader = watch.Metadata(metadata.endpoint)
    assert reader.get("instance-id") == "i-0123456789abcdef0"
    metadata.tokens.clear()  # the session token expired
    assert reader.get("instance-id") == "i-0123456789abcdef0"


def test_the_region_comes_from_the_environment_else_from_the_instance(metadata, monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    metadata.pages["placement/region"] = "eu-central-1"
    reader = watch.Metadata(metadata.endpoint)
    assert watch.aws_region(reader) == "eu-central-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert watch.aws_region(reader) == "us-west-2"


def run_watch(cluster, metadata, autoscaling, name):
    options = watch.parse(["--scheduler", cluster.address, "--name", name, "--retire-timeout", "30",
                           "--interval", "0.1"])
    watch.watch(options, watch.Metadata(metadata.endpoint), lambda: autoscaling)


def test_the_worker_is_retired_before_the_lifecycle_action_is_completed(make_cluster, make_data, metadata):
    cluster = make_cluster()
    leaving, staying = cluster.add_worker("leaving"), cluster.add_worker("staying")
    data = make_data(cluster)
    data.scatter(leaving.address)
    data.scatter(staying.address)
    autoscaling = AutoScaling(cluster, data, "leaving")
    metadata.pages["autoscaling/target-lifecycle-state"] = "Terminated"

    run_watch(cluster, metadata, autoscaling, "leaving")

    [action] = autoscaling.completed
    assert action == {
        "LifecycleHookName": "dask-cluster-retire-worker", "AutoScalingGroupName": "dask-cluster-workers",
        "InstanceId": "i-0123456789abcdef0", "LifecycleActionResult": "CONTINUE",
        # When the group was told to go on, the worker took no task and held nothing.
        "status": "closing_gracefully", "still_held_here": [],
    }
    assert data.intact()
    assert cluster.status_of("staying") == "running"


def test_a_spot_notice_retires_the_worker_then_the_groups_termination_is_let_go(make_cluster, make_data, metadata):
    cluster = make_cluster()
    leaving, staying = cluster.add_worker("leaving"), cluster.add_worker("staying")
    data = make_data(cluster)
    data.scatter(leaving.address)
    autoscaling = AutoScaling(cluster, data, "leaving")
    metadata.pages["spot/instance-action"] = json.dumps({"action": "terminate", "time": "2026-12-07T16:00:00Z"})
    watching = threading.Thread(target=run_watch, args=(cluster, metadata, autoscaling, "leaving"), daemon=True)
    watching.start()

    # The notice alone: the worker is retired, and nothing is completed yet.
    wait_until(lambda: cluster.status_of("leaving") == "closing_gracefully", 30, "the worker retired")
    wait_until(lambda: all(where == {"staying"} for where in data.holders().values()), 30, "its results moved")
    assert autoscaling.completed == [] and watching.is_alive()
    # Then the group terminates the instance (its lifecycle hook holds it): let go.
    metadata.pages["autoscaling/target-lifecycle-state"] = "Terminated"
    watching.join(30)
    assert not watching.is_alive()
    [action] = autoscaling.completed
    assert (action["status"], action["still_held_here"]) == ("closing_gracefully", [])
    assert data.intact()


def test_the_watch_waits_while_the_worker_has_nowhere_to_go(make_cluster, make_data, metadata):
    # The last worker cannot be retired: the watch tries again rather than letting the
    # group take the results with the instance; a worker that joins gives them a place.
    cluster = make_cluster()
    leaving = cluster.add_worker("leaving")
    data = make_data(cluster)
    data.scatter(leaving.address)
    autoscaling = AutoScaling(cluster, data, "leaving")
    metadata.pages["autoscaling/target-lifecycle-state"] = "Terminated"
    cluster.add_worker_later("replacement", 3)

    run_watch(cluster, metadata, autoscaling, "leaving")

    [action] = autoscaling.completed
    assert (action["status"], action["still_held_here"]) == ("closing_gracefully", [])
    assert data.intact()
