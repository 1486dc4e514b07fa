"""Fixtures of the fleet scenario: the fleet as the aws_ec2 inventory and the local
EC2/Auto Scaling API see it, and the containers that stand in for its instances."""

import json
import os
import re
import time
import urllib.request

import boto3
import pytest

from client_session import Session
from helpers import group_hosts, inventory_listing

WORKERS_GROUP = "dask-cluster-workers"
# ec2_hosts.py plays AWS's metadata service and lifecycle hooks here (the network's gateway).
AWS_STAND_IN = "http://10.20.0.1:8169"


def inventory():
    """The scenario's inventory (production file + overlay) as ansible-inventory lists it."""
    return inventory_listing(os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]))


def container(listing, host):
    """The container of an inventory host: named after its instance id."""
    return listing["_meta"]["hostvars"][host]["ec2_instance_id"]


def worker_group():
    [group] = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[WORKERS_GROUP])[
        "AutoScalingGroups"
    ]
    return group


def instance_state(instance_id):
    [reservation] = boto3.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservation["Instances"][0]["State"]["Name"]


def as_aws(action, instance_id):
    """Act as AWS on an instance through ec2_hosts.py: "terminate" (a scale-in the group
    starts) or "spot" (a spot interruption notice). Returns its answer."""
    request = urllib.request.Request(f"{AWS_STAND_IN}/fleet/{action}/{instance_id}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read().decode()


def completed_lifecycle_actions():
    with urllib.request.urlopen(f"{AWS_STAND_IN}/fleet/lifecycle", timeout=30) as answer:
        return json.loads(answer.read())


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def session(request):
    """Start a client session on the scheduler; call with the number of workers."""
    listing = inventory()
    [scheduler] = group_hosts(listing, "dask_schedulers")
    return lambda workers: Session(container(listing, scheduler), re.sub(r"\W", "_", request.node.name), workers)
