"""inventories/production/production.aws_ec2.yml against instances created through
the EC2 API: what it groups, names and excludes."""

from conftest import ansible_inventory, ec2
from helpers import group_hosts


def launch(platform, tags, subnet=0):
    """One instance with these tags in a platform subnet; returns its id."""
    kwargs = {"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]} if tags else {}
    [instance] = ec2().run_instances(
        ImageId=platform["dask_aws_image_id"], MinCount=1, MaxCount=1, InstanceType="m5.large",
        SubnetId=platform["dask_aws_subnet_ids"][subnet], **kwargs,
    )["Instances"]
    return instance["InstanceId"]


def test_groups_names_and_addresses_come_from_the_tags(platform):
    cluster = {"Project": "dask-cluster"}
    launch(platform, {**cluster, "Role": "scheduler", "Name": "sched-1"})
    unnamed = [launch(platform, {**cluster, "Role": "worker"}, subnet=i % 2) for i in range(2)]
    launch(platform, {**cluster, "Role": "worker", "Name": "named-worker"})
    other_project = launch(platform, {"Project": "another-cluster", "Role": "worker", "Name": "not-ours"})
    stopped = launch(platform, {**cluster, "Role": "worker", "Name": "stopped-worker"})
    ec2().stop_instances(InstanceIds=[stopped])
    untagged = launch(platform, {})

    listing = ansible_inventory()
    hostvars = listing["_meta"]["hostvars"]
    assert group_hosts(listing, "dask_schedulers") == ["sched-1"] == group_hosts(listing, "role_scheduler")
    # The Name tag names a host; the instance id when there is none.
    assert group_hosts(listing, "dask_workers") == sorted(unnamed + ["named-worker"]) == group_hosts(listing, "role_worker")
    # Other projects, stopped and untagged instances are not part of the fleet.
    assert sorted(hostvars) == sorted(unnamed + ["named-worker", "sched-1"])
    assert not {other_project, stopped, untagged, "not-ours", "stopped-worker"} & set(hostvars)

    zones = {h: v["ec2_placement"]["availability_zone"] for h, v in hostvars.items()}
    assert set(zones.values()) == {"us-west-2a", "us-west-2b"}
    for host, v in hostvars.items():
        assert v["ansible_host"] == v["ec2_private_ip_address"]
        assert v["ec2_tags"]["Project"] == "dask-cluster"
        # AWS variables carry the ec2_ prefix: no clash with the reserved name `tags`.
        assert "tags" not in v and "instance_id" not in v
        assert host in group_hosts(listing, "az_" + zones[host].replace("-", "_"))
    # The group_vars beside the inventory apply: connection settings for the instances.
    assert hostvars["sched-1"]["ansible_user"] == "admin" and hostvars["sched-1"]["ansible_become"] is True


def test_another_fleet_by_environment(platform):
    launch(platform, {"Project": "dask-cluster", "Role": "worker"})
    theirs = launch(platform, {"Project": "research", "Role": "worker", "Name": "research-w1"})
    listing = ansible_inventory({"DASK_AWS_PROJECT": "research"})
    assert group_hosts(listing, "dask_workers") == ["research-w1"]
    assert listing["_meta"]["hostvars"]["research-w1"]["ec2_instance_id"] == theirs
