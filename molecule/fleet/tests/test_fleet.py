"""The fleet is found through the aws_ec2 inventory, deployed by site.yml, scaled by
scale.yml (2 -> 4 -> 3) and then shrunk by AWS itself (a scale-in the group starts, a
spot interruption: 3 -> 2 -> 1) without losing results. Tests run in file order."""

import json
import time

import boto3
from conftest import (
    as_aws,
    completed_lifecycle_actions,
    container,
    instance_state,
    inventory,
    wait_until,
    worker_group,
)
from helpers import flat, get_host, group_hosts, run_playbook


def worker_statuses(listing):
    """{name: status} of the workers the scheduler knows, asked on the scheduler host."""
    [scheduler] = group_hosts(listing, "dask_schedulers")
    host = get_host(container(listing, scheduler))
    address = host.check_output("hostname -I").split()[0]
    # Asked now: Client.scheduler_info() may return a cached copy listing no worker.
    statuses = host.check_output(
        "/opt/dask/venvs/current/bin/python -c "
        f"\"from distributed import Client; c = Client('tls://{address}:8786', timeout=30); "
        "import json; print(json.dumps({w['name']: w['status'] for w in c.sync(c.scheduler.identity, n_workers=-1)['workers'].values()}))\""
    )
    return json.loads(statuses)


def registered_workers(listing):
    """Names of the workers the scheduler knows."""
    return sorted(worker_statuses(listing))


def terminated_by_the_group(instance):
    """A termination the group starts: held by its lifecycle hook until the instance's watch
    completes the action, then the instance goes, and its worker with it."""
    assert as_aws("terminate", instance) == "Terminating:Wait"
    wait_until(lambda: instance_state(instance) in ("shutting-down", "terminated"), 180,
               f"{instance} terminated after its lifecycle action")
    wait_until(lambda: instance not in registered_workers(inventory()), 120, f"{instance} gone from the scheduler")


def nothing_lost(report):
    assert report["lost"] == {}, report["lost"]
    assert report["failed"] == 0 and report["completed"] > 0, report
    assert [r["worker"] for r in report["removals"]] and all(
        r["lost-computed-tasks"] == [] and r["lost-scattered-tasks"] == [] for r in report["removals"]
    ), report["removals"]


def test_the_inventory_groups_the_instances_the_api_has():
    listing = inventory()
    group = worker_group()
    in_service = sorted(i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService")
    assert len(in_service) == group["DesiredCapacity"] == 2
    # Workers have no Name tag: the instance id is the host name.
    assert group_hosts(listing, "dask_workers") == in_service == group_hosts(listing, "role_worker")
    assert group_hosts(listing, "dask_schedulers") == ["dask-cluster-scheduler"] == group_hosts(listing, "role_scheduler")
    hostvars = listing["_meta"]["hostvars"]
    for host in in_service + ["dask-cluster-scheduler"]:
        # ansible_host is the private IP, as in production; the overlay only adds the docker connection.
        assert hostvars[host]["ansible_host"] == hostvars[host]["ec2_private_ip_address"]
        assert hostvars[host]["ec2_tags"]["Project"] == "dask-cluster"
        assert host in group_hosts(listing, "az_" + hostvars[host]["ec2_placement"]["availability_zone"].replace("-", "_"))
        # The container behind the instance has the instance's private address.
        assert get_host(container(listing, host)).check_output("hostname -I").split()[0] == hostvars[host]["ansible_host"]


def test_site_deployed_every_worker_the_inventory_found():
    listing = inventory()
    assert registered_workers(listing) == group_hosts(listing, "dask_workers")
    run = run_playbook("health.yml")
    assert run.rc == 0, run.output[-3000:]


def test_scale_refuses_a_size_outside_the_group_bounds():
    run = run_playbook("scale.yml", "-e", "dask_scale_workers=5")
    assert run.rc != 0
    assert "5 workers is outside the group's bounds (min 1, max 4)" in flat(run.output), run.output[-3000:]
    assert worker_group()["DesiredCapacity"] == 2


def test_a_rerun_of_provision_keeps_the_lifecycle_hook_and_the_suspension():
    group = worker_group()
    [template] = boto3.client("ec2").describe_launch_templates(LaunchTemplateNames=["dask-cluster-worker"])["LaunchTemplates"]
    image = boto3.client("ec2").describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"]
    run = run_playbook("provision.yml", "-e", json.dumps({
        "dask_aws_subnet_ids": group["VPCZoneIdentifier"].split(","), "dask_aws_image_id": image,
        "dask_aws_workers_min": 1, "dask_aws_workers_max": 4, "dask_aws_workers_desired": 2}))
    assert run.rc == 0, run.output[-4000:]
    assert run.changed.get("localhost") == 0, run.output[-4000:]
    [hook] = boto3.client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=group["AutoScalingGroupName"])[
        "LifecycleHooks"]
    assert hook["LifecycleHookName"] == "dask-cluster-retire-worker"
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert (hook["HeartbeatTimeout"], hook["DefaultResult"]) == (900, "CONTINUE")
    assert [p["ProcessName"] for p in worker_group()["SuspendedProcesses"]] == ["AZRebalance"]


def test_scale_out_configures_and_registers_the_new_workers():
    before = group_hosts(inventory(), "dask_workers")
    run = run_playbook("scale.yml", "-e", "dask_scale_workers=4")
    assert run.rc == 0, run.output[-4000:]
    listing = inventory()
    workers = group_hosts(listing, "dask_workers")
    assert len(workers) == 4 and set(before) < set(workers)
    assert worker_group()["DesiredCapacity"] == 4
    assert registered_workers(listing) == workers
    # Only the new workers were configured, each with its termination watch.
    new = set(workers) - set(before)
    assert set(run.changed) & set(before) == set(), run.changed
    for worker in new:
        assert run.changed[worker] > 0
        assert get_host(container(listing, worker)).service("dask-termination-watch").is_running


def test_scale_in_retires_the_newest_worker_and_loses_nothing(session):
    listing = inventory()
    hostvars = listing["_meta"]["hostvars"]
    workers = group_hosts(listing, "dask_workers")
    newest = max(workers, key=lambda w: hostvars[w]["ec2_launch_time"])
    client = session(len(workers))  # holds results on every worker, the newest included
    run = run_playbook("scale.yml", "-e", "dask_scale_workers=3")
    report = client.finish()
    assert run.rc == 0, run.output[-4000:]

    nothing_lost(report)
    # Exactly the chosen instance went, and the group did not replace it.
    assert instance_state(newest) in ("shutting-down", "terminated")
    group = worker_group()
    assert group["DesiredCapacity"] == 3
    assert sorted(i["InstanceId"] for i in group["Instances"]) == sorted(set(workers) - {newest})
    listing = inventory()
    assert group_hosts(listing, "dask_workers") == sorted(set(workers) - {newest})
    assert registered_workers(listing) == sorted(set(workers) - {newest})


def test_a_scale_in_the_group_starts_waits_until_the_worker_is_retired(session):
    listing = inventory()
    workers = group_hosts(listing, "dask_workers")
    leaving = workers[0]
    client = session(len(workers))  # holds results on every worker
    # The group's termination hook (provision.yml) holds the instance in Terminating:Wait; its
    # watch sees target-lifecycle-state Terminated, retires the worker and completes the action.
    terminated_by_the_group(leaving)
    report = client.finish()

    nothing_lost(report)
    [action] = completed_lifecycle_actions()
    assert (action["InstanceId"], action["LifecycleHookName"], action["LifecycleActionResult"]) == (
        leaving, "dask-cluster-retire-worker", "CONTINUE")
    assert action["AutoScalingGroupName"] == worker_group()["AutoScalingGroupName"]
    assert worker_group()["DesiredCapacity"] == 2
    assert registered_workers(inventory()) == sorted(set(workers) - {leaving})


def test_a_spot_interruption_notice_retires_the_worker(session):
    listing = inventory()
    workers = group_hosts(listing, "dask_workers")
    leaving = workers[0]
    host = get_host(container(listing, leaving))
    client = session(len(workers))
    # Control: without its watch, nobody acts on the notice; the worker keeps running.
    host.check_output("systemctl stop dask-termination-watch")
    as_aws("spot", leaving)
    time.sleep(6)  # three reads of the metadata by a running watch
    assert worker_statuses(inventory())[leaving] == "running"

    host.check_output("systemctl start dask-termination-watch")
    wait_until(lambda: worker_statuses(inventory())[leaving] == "closing_gracefully", 120, f"{leaving} retired")
    assert "spot interruption" in host.check_output("journalctl -u dask-termination-watch --no-pager")
    # Then EC2 takes the instance, which the group goes through as a termination (its hook
    # included): the watch, its worker retired already, lets it go.
    terminated_by_the_group(leaving)
    report = client.finish()

    nothing_lost(report)
    assert [a["InstanceId"] for a in completed_lifecycle_actions()][1:] == [leaving]
    assert worker_group()["DesiredCapacity"] == 1
