"""The fleet is found through the aws_ec2 inventory, deployed by site.yml and scaled
by scale.yml (2 -> 3 -> 2) without losing results. Tests run in file order."""

import json

from conftest import container, instance_state, inventory, worker_group
from helpers import flat, get_host, group_hosts, run_playbook


def registered_workers(listing):
    """Names of the workers the scheduler knows, asked on the scheduler host."""
    [scheduler] = group_hosts(listing, "dask_schedulers")
    host = get_host(container(listing, scheduler))
    address = host.check_output("hostname -I").split()[0]
    # Asked now: Client.scheduler_info() may return a cached copy listing no worker.
    names = host.check_output(
        "/opt/dask/venvs/current/bin/python -c "
        f"\"from distributed import Client; c = Client('tls://{address}:8786', timeout=30); "
        "import json; print(json.dumps(sorted(w['name'] for w in c.sync(c.scheduler.identity, n_workers=-1)['workers'].values())))\""
    )
    return json.loads(names)


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


def test_scale_out_configures_and_registers_the_new_worker():
    before = group_hosts(inventory(), "dask_workers")
    run = run_playbook("scale.yml", "-e", "dask_scale_workers=3")
    assert run.rc == 0, run.output[-4000:]
    listing = inventory()
    workers = group_hosts(listing, "dask_workers")
    assert len(workers) == 3 and set(before) < set(workers)
    assert worker_group()["DesiredCapacity"] == 3
    assert registered_workers(listing) == workers
    # Only the new worker was configured.
    [new] = set(workers) - set(before)
    assert set(run.changed) & set(before) == set(), run.changed
    assert run.changed[new] > 0


def test_scale_in_retires_the_newest_worker_and_loses_nothing(session):
    listing = inventory()
    hostvars = listing["_meta"]["hostvars"]
    workers = group_hosts(listing, "dask_workers")
    newest = max(workers, key=lambda w: hostvars[w]["ec2_launch_time"])
    client = session(len(workers))  # holds results on every worker, the newest included
    run = run_playbook("scale.yml", "-e", "dask_scale_workers=2")
    report = client.finish()
    assert run.rc == 0, run.output[-4000:]

    assert report["lost"] == {}, report["lost"]
    assert report["failed"] == 0 and report["completed"] > 0, report
    assert [r["worker"] for r in report["removals"]] and all(
        r["lost-computed-tasks"] == [] and r["lost-scattered-tasks"] == [] for r in report["removals"]
    ), report["removals"]
    # Exactly the chosen instance went, and the group did not replace it.
    assert instance_state(newest) in ("shutting-down", "terminated")
    group = worker_group()
    assert group["DesiredCapacity"] == 2
    assert sorted(i["InstanceId"] for i in group["Instances"]) == sorted(set(workers) - {newest})
    listing = inventory()
    assert group_hosts(listing, "dask_workers") == sorted(set(workers) - {newest})
    assert registered_workers(listing) == sorted(set(workers) - {newest})
