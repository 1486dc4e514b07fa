# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retire this instance's Dask worker when AWS announces the instance's end.

Installed by the dataplatform.dask.dask_worker role on EC2 workers as
dask-termination-watch.service (dask_worker_aws_termination_watch). AWS ends a worker
instance on its own in two ways that no playbook sees coming:

- the Auto Scaling group terminates it (a scale-in by a policy or a person, a
  rebalance, an unhealthy instance). With the termination lifecycle hook that
  provision.yml puts on the group, the instance waits in Terminating:Wait and the
  instance metadata says ``autoscaling/target-lifecycle-state`` = ``Terminated``;
- EC2 reclaims a spot instance: ``spot/instance-action`` appears two minutes before.

Either way this watch has the scheduler retire the worker (its results move to other
workers, its running tasks finish) with the collection's own retirement code, the one
the retire_workers module runs (module_utils/_dask_retire.py, installed beside this
file). When the group terminates the instance (a spot interruption of a group's
instance goes on as one), it completes the lifecycle action so that the group goes on.
The worker is left retired (closing_gracefully: it takes no new task) until the instance
goes. The metadata is read with IMDSv2 (a session token).

    /opt/dask/venvs/current/bin/python dask_termination_watch.py --scheduler tls://10.0.1.5:8786 \\
        --name ip-10-0-1-7 [--tls-ca-file ... --tls-cert ... --tls-key ...]

The metadata endpoint is AWS's (169.254.169.254) unless AWS_EC2_METADATA_SERVICE_ENDPOINT
says otherwise, as for boto3, which completes the lifecycle action with the instance
role's credentials (autoscaling:DescribeAutoScalingInstances, DescribeLifecycleHooks,
CompleteLifecycleAction).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request

log = logging.getLogger("dask-termination-watch")

METADATA = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254/").rstrip("/")
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


class Metadata:
    """The instance metadata service, version 2: every read carries a session token."""

    def __init__(self, endpoint=METADATA, timeout=2.0):
        self.endpoint = endpoint
        self.timeout = timeout
        self.token = None

    def _token(self):
        request = urllib.request.Request(self.endpoint + "/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:
            return answer.read().decode()

    def get(self, path):
        """The text at ``latest/meta-data/<path>``, or None where there is none (404)."""
        for attempt in (1, 2):
            if self.token is None:
                self.token = self._token()
            request = urllib.request.Request(self.endpoint + "/latest/meta-data/" + path,
                                             headers={"X-aws-ec2-metadata-token": self.token})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return answer.read().decode()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 1:  # the token expired: take a new one
                    self.token = None
                    continue
                raise
        return None


def announcement(metadata):
    """Why the instance is about to end: ``"lifecycle"`` (the Auto Scaling group terminates
    it), ``"spot"`` (a spot interruption notice), or None."""
    if metadata.get("autoscaling/target-lifecycle-state") == "Terminated":
        return "lifecycle"
    notice = metadata.get("spot/instance-action")
    if notice and json.loads(notice).get("action") in ("terminate", "stop", "hibernate"):
        return "spot"
    return None


def aws_region(metadata):
    """The region for the Auto Scaling API: the services' environment (AWS_REGION,
    AWS_DEFAULT_REGION), else the instance's own (``placement/region``)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or metadata.get("placement/region")


def complete_lifecycle_actions(autoscaling, instance_id):
    """Tell the instance's Auto Scaling group that it may terminate it: CONTINUE on every
    termination hook of the group. Returns the hook names."""
    [instance] = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    group = instance["AutoScalingGroupName"]
    hooks = [h["LifecycleHookName"] for h in autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
             if h["LifecycleTransition"] == TERMINATING]
    for hook in hooks:
        autoscaling.complete_lifecycle_action(LifecycleHookName=hook, AutoScalingGroupName=group,
                                              InstanceId=instance_id, LifecycleActionResult="CONTINUE")
    return group, hooks


def retire(options):
    """Have the scheduler retire this worker and wait for its running tasks: ``(ok, message)``."""
    from ansible_collections.dataplatform.dask.plugins.module_utils import _dask_comm, _dask_retire  # noqa: E501 pylint: disable=import-outside-toplevel

    try:
        conn_args = _dask_comm.connection_args(options.scheduler, options.tls_ca_file, options.tls_cert, options.tls_key)
        ok, result = asyncio.run(_dask_retire.retire_workers(
            options.scheduler, conn_args, [options.name], timeout=options.retire_timeout, missing_ok=True))
    except _dask_comm.DaskCommError as exc:
        return False, exc.message
    return ok, result["msg"]


def watch(options, metadata, autoscaling_client):
    """Poll until an announcement and retire the worker; once the group terminates the
    instance, complete the lifecycle action and return.

    A spot interruption of a group's instance goes on as the group's termination (its
    lifecycle hook included), so after a spot notice the watch keeps reading until then.
    A retirement that fails (the scheduler unreachable, the last worker) is tried again
    until the deadline the announcement leaves (the hook's timeout, the spot notice's two
    minutes are enforced by AWS, not here): giving up early would only lose the results
    sooner."""
    retired = False
    while True:
        reason = announcement(metadata)
        if reason and not retired:
            log.warning("AWS announced the end of this instance (%s): retiring worker %s through %s",
                        "Auto Scaling termination" if reason == "lifecycle" else "spot interruption",
                        options.name, options.scheduler)
            ok, message = retire(options)
            log.log(logging.INFO if ok else logging.ERROR, "%s", message)
            retired = ok
        if retired and reason == "lifecycle":
            break
        time.sleep(options.interval)
    instance_id = metadata.get("instance-id")
    try:
        group, hooks = complete_lifecycle_actions(autoscaling_client(), instance_id)
    except Exception as exc:  # pylint: disable=broad-except
        # E.g. completed already (this watch restarted with its worker): the hook's
        # timeout ends the wait anyway, and the worker holds nothing any more.
        log.error("Could not complete the lifecycle action of %s: %s", instance_id, exc)
    else:
        log.warning("Completed the lifecycle action of %s in %s (hooks: %s): the group may terminate it",
                    instance_id, group, ", ".join(hooks) or "none")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--scheduler", required=True, help="the scheduler's address (tls://host:8786)")
    parser.add_argument("--name", required=True, help="the worker's name (dask worker --name)")
    parser.add_argument("--tls-ca-file")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--retire-timeout", type=float, default=300.0,
                        help="seconds each retirement may take (moving results, running tasks)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between metadata reads")
    return parser.parse_args(argv)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = parse(argv)
    metadata = Metadata()

    def autoscaling_client():
        import boto3  # pylint: disable=import-outside-toplevel
        return boto3.client("autoscaling", region_name=aws_region(metadata))

    watch(options, metadata, autoscaling_client)
    # The worker is retired (no task until the instance goes) and the group may go on.
    log.info("Done: worker %s is retired and stays so until the instance ends.", options.name)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
