"""The scaling policy: the alarms and the scale-out policy exist with the configured
thresholds, the scale-in alarm reaches no Auto Scaling action (only a topic), and
scale.yml takes its decision from that alarm's state."""

import boto3
import pytest
from conftest import WORKERS, cluster_health, wait_until

from helpers import flat, get_host, run_playbook

GROUP = "dask-mon-workers"
HIGH, LOW = "dask-mon-utilization-high", "dask-mon-utilization-low"


@pytest.fixture(scope="module")
def aws():
    # The scenario's environment points boto3 at dask-mon-moto (AWS_ENDPOINT_URL).
    return {name: boto3.client(name) for name in ("cloudwatch", "autoscaling", "sns")}


def alarm(aws, name):
    [found] = aws["cloudwatch"].describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return found


def desired(aws):
    [group] = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    return group["DesiredCapacity"]


def test_scale_out_alarm_drives_the_groups_policy(aws):
    high = alarm(aws, HIGH)
    assert (high["Namespace"], high["MetricName"], high["Statistic"]) == ("Dask/Cluster", "ClusterUtilization", "Average")
    assert high["Dimensions"] == [{"Name": "ClusterName", "Value": "dask-mon"}]
    assert (high["ComparisonOperator"], high["Threshold"]) == ("GreaterThanThreshold", 75.0)
    assert (high["Period"], high["EvaluationPeriods"]) == (300, 2)
    [policy] = aws["autoscaling"].describe_policies(AutoScalingGroupName=GROUP)["ScalingPolicies"]
    assert (policy["AdjustmentType"], policy["ScalingAdjustment"], policy["Cooldown"]) == ("ChangeInCapacity", 1, 300)
    assert high["AlarmActions"] == [policy["PolicyARN"]]


def test_scale_in_alarm_only_notifies(aws):
    low = alarm(aws, LOW)
    assert (low["ComparisonOperator"], low["Threshold"]) == ("LessThanThreshold", 30.0)
    assert (low["Period"], low["EvaluationPeriods"]) == (300, 2)
    topics = [t["TopicArn"] for t in aws["sns"].list_topics()["Topics"]]
    assert low["AlarmActions"] == [t for t in topics if t.endswith(":dask-mon-scale-in")]
    # No Auto Scaling action: the group never terminates a worker by itself.
    assert not any(":autoscaling:" in action for action in low["AlarmActions"])
    assert [p["PolicyName"] for p in aws["autoscaling"].describe_policies(AutoScalingGroupName=GROUP)["ScalingPolicies"]] \
        == [f"{GROUP}-scale-out"]


def test_scale_yml_keeps_the_size_while_the_alarm_is_quiet_and_configures_a_worker_the_group_launched(aws):
    aws["cloudwatch"].set_alarm_state(AlarmName=LOW, StateValue="OK", StateReason="test")
    # Like an instance the scale-out policy launched: in the inventory, unknown to the scheduler.
    get_host(WORKERS[1]).check_output("systemctl stop dask-worker.service")
    wait_until(lambda: cluster_health()["worker_count"] == 1, 60, what="the scheduler forgetting the worker")
    run = run_playbook("scale.yml", "-e", "dask_scale_from_alarms=true")
    assert run.rc == 0, run.output[-3000:]
    assert f"Alarm {LOW} is OK: going from 2 to 2 worker(s)." in flat(run.output)
    assert run.changed.get(WORKERS[1], 0) > 0 and run.changed.get(WORKERS[0], 0) == 0, run.changed
    assert cluster_health()["worker_count"] == 2 and desired(aws) == 2


def test_scale_yml_takes_one_worker_out_while_the_scale_in_alarm_fires(aws):
    aws["cloudwatch"].set_alarm_state(AlarmName=LOW, StateValue="ALARM", StateReason="test")
    try:
        run = run_playbook("scale.yml", "-e", "dask_scale_from_alarms=true")
    finally:
        aws["cloudwatch"].set_alarm_state(AlarmName=LOW, StateValue="OK", StateReason="test")
    output = flat(run.output)
    assert f"Alarm {LOW} is ALARM: going from 2 to 1 worker(s)." in output, run.output[-3000:]
    # The group's instances here are moto's, not these containers: scale.yml finds no worker of the
    # group in the inventory to retire and stops before touching anything (the fleet scenario runs
    # the retirement itself). Nothing was terminated, no worker left.
    assert run.rc != 0 and "Going from 2 to 1 workers removes 1 of them" in output, run.output[-3000:]
    assert desired(aws) == 2 and cluster_health()["worker_count"] == 2


def test_scale_yml_refuses_a_target_and_the_alarms_together():
    run = run_playbook("scale.yml", "-e", "dask_scale_from_alarms=true", "-e", "dask_scale_workers=3")
    assert run.rc != 0 and "not both" in flat(run.output)
