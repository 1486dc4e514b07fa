"""Fixtures of the fleet scenario: the fleet as the aws_ec2 inventory and the local
EC2/Auto Scaling API see it, and the containers that stand in for its instances."""

import json
import os
import re
import subprocess
import sys

import boto3
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from client_session import Session  # noqa: E402

WORKERS_GROUP = "dask-cluster-workers"


def inventory():
    """`ansible-inventory --list` of the scenario's inventory (production file + overlay)."""
    out = subprocess.run(
        ["ansible-inventory", "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "--list"],
        capture_output=True, text=True, check=True,
    ).stdout
    # Values from the AWS API come out marked unsafe ({"__ansible_unsafe": value}).
    return json.loads(out, object_hook=lambda d: d.get("__ansible_unsafe", d) if len(d) == 1 else d)


def group_hosts(listing, group):
    return sorted(listing.get(group, {}).get("hosts", []))


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


@pytest.fixture
def session(request):
    """Start a client session on the scheduler; call with the number of workers."""
    listing = inventory()
    [scheduler] = group_hosts(listing, "dask_schedulers")
    return lambda workers: Session(container(listing, scheduler), re.sub(r"\W", "_", request.node.name), workers)
