"""playbooks/provision.yml (and scale.yml's refusals) against the local AWS API."""

import os

import boto3

from conftest import ansible_inventory, ec2, run_playbook
from helpers import flat, group_hosts

GROUP = "dask-cluster-workers"


def created():
    """What exists besides the platform's VPC: security groups, instances, worker groups."""
    groups = sorted(g["GroupName"] for g in ec2().describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default")
    instances = sum(len(r["Instances"]) for r in ec2().describe_instances()["Reservations"])
    asgs = boto3.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
    return groups, instances, [g["AutoScalingGroupName"] for g in asgs]


def test_provision_twice_then_the_inventory_sees_the_cluster(platform):
    first = run_playbook("provision.yml", platform)
    assert first.rc == 0, first.output[-3000:]
    assert first.changed > 0
    second = run_playbook("provision.yml", platform)
    assert second.rc == 0 and second.changed == 0, second.output[-3000:]
    check = run_playbook("provision.yml", platform, "--check")
    assert check.rc == 0 and check.changed == 0, check.output[-3000:]

    listing = ansible_inventory()
    assert group_hosts(listing, "dask_schedulers") == ["dask-cluster-scheduler"]
    assert len(group_hosts(listing, "dask_workers")) == 3  # the reference desired capacity
    [group] = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (2, 3, 8)

    [sg] = ec2().describe_security_groups(Filters=[{"Name": "group-name", "Values": ["dask-cluster"]}])["SecurityGroups"]
    dask_ports = [p for p in sg["IpPermissions"] if p.get("FromPort") in (8786, 8787)]
    assert sorted(p["FromPort"] for p in dask_ports) == [8786, 8787]
    for rule in dask_ports:
        # Only the private subnets, never the world.
        assert sorted(r["CidrIp"] for r in rule["IpRanges"]) == ["10.20.1.0/24", "10.20.2.0/24"]
    members = [p for p in sg["IpPermissions"] if p.get("UserIdGroupPairs")]
    assert [(p["FromPort"], p["ToPort"], p["UserIdGroupPairs"][0]["GroupId"]) for p in members] == [(0, 65535, sg["GroupId"])]

    [template] = ec2().describe_launch_template_versions(LaunchTemplateName="dask-cluster-worker", Versions=["$Latest"])[
        "LaunchTemplateVersions"
    ]
    assert template["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"


def test_a_rerun_leaves_a_scaled_group_at_its_size(platform):
    assert run_playbook("provision.yml", platform).rc == 0
    boto3.client("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=5)
    run = run_playbook("provision.yml", platform)
    assert run.rc == 0 and run.changed == 0, run.output[-3000:]
    [group] = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    assert group["DesiredCapacity"] == 5


def test_check_mode_on_a_new_account_creates_nothing(platform):
    run = run_playbook("provision.yml", platform, "--check")
    assert run.rc == 0, run.output[-3000:]
    assert created() == ([], 0, [])


def test_refuses_without_credentials(platform):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k in ("AWS_ENDPOINT_URL", "AWS_REGION")}
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true")
    run = run_playbook("provision.yml", platform, env=env)
    assert run.rc != 0
    assert "AWS did not accept the controller's credentials in us-west-2" in flat(run.output), run.output[-2000:]
    assert created() == ([], 0, [])


def test_refuses_without_a_region(platform):
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    run = run_playbook("provision.yml", {**platform, "dask_aws_region": ""}, env=env)
    assert run.rc != 0
    assert "No AWS region: set dask_aws_region" in flat(run.output), run.output[-2000:]
    assert created() == ([], 0, [])


def test_refuses_bad_settings(platform):
    cases = {
        "subnet-0000000000000000": {**platform, "dask_aws_subnet_ids": ["subnet-0000000000000000"]},
        "dask_aws_workers_min <= desired <= max": {**platform, "dask_aws_workers_min": 4, "dask_aws_workers_max": 3},
        "dask_aws_subnet_ids (a list": {**platform, "dask_aws_subnet_ids": platform["dask_aws_subnet_ids"][0]},
    }
    for expected, extra_vars in cases.items():
        run = run_playbook("provision.yml", extra_vars)
        assert run.rc != 0 and expected in flat(run.output), (expected, run.output[-2000:])
    assert created() == ([], 0, [])


def test_scale_refuses_without_a_worker_group():
    run = run_playbook("scale.yml", {"dask_scale_workers": 3})
    assert run.rc != 0
    assert f"There is no Auto Scaling group {GROUP} in us-west-2: run provision.yml first" in flat(run.output), run.output[-2000:]
