"""Fixtures of the fleet scenario: the fleet as the aws_ec2 inventory and the local
EC2/Auto Scaling API see it, and the containers that stand in for its instances."""

import os
import re
import sys

import boto3
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from client_session import Session  # noqa: E402
from helpers import group_hosts, inventory_listing  # noqa: E402

WORKERS_GROUP = "dask-cluster-workers"


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


@pytest.fixture
def session(request):
    """Start a client session on the scheduler; call with the number of workers."""
    listing = inventory()
    [scheduler] = group_hosts(listing, "dask_schedulers")
    return lambda workers: Session(container(listing, scheduler), re.sub(r"\W", "_", request.node.name), workers)
