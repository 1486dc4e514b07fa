"""Plays the part of EC2's hypervisors for the fleet scenario.

The moto server is EC2's control plane: provision.yml and scale.yml launch and
terminate instances there, and the aws_ec2 inventory reads them back. This process
gives every running instance of the project a machine: a systemd container named
after the instance id, on a Docker network with the VPC's address range, at the
instance's private IP. When an instance is terminated (or disappears in a reset),
its container is removed. The containers are systemd hosts like those of every other
scenario (molecule/shared/systemd_host.yml, through scripts/systemd_host.py), from the
harness's image (DASK_BASE_IMAGE, scripts/env.sh).

It also plays the parts of AWS that moto lacks, on port 8169 of the network's gateway
(the first address of CIDR), where the containers reach it:

- each instance's metadata service (IMDSv2), told apart by the caller's address: its
  instance id, IAM role credentials (moto accepts any), and what AWS announces there:
  ``autoscaling/target-lifecycle-state`` and ``spot/instance-action``;
- the part of the Auto Scaling API that runs lifecycle hooks (moto stores hooks but never
  runs them): CompleteLifecycleAction ends an instance's Terminating:Wait by terminating
  it in moto. Every other Auto Scaling call is passed on to moto unchanged.

The tests act as AWS through it: ``POST /fleet/terminate/<id>`` is a scale-in the group
starts (the instance waits for its lifecycle action when the group has a termination
hook in moto, else it is terminated at once), ``POST /fleet/spot/<id>`` a spot
interruption notice; ``GET /fleet/lifecycle`` lists the completed lifecycle actions.

    python ec2_hosts.py PROJECT NETWORK CIDR     (AWS_ENDPOINT_URL names the moto server)

Runs until SIGTERM. Each container carries the label dataplatform.dask.fleet=PROJECT,
which destroy.yml uses to clean up.
"""

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import systemd_host  # noqa: E402  (the settings of every systemd container of the suite)

LABEL = "dataplatform.dask.fleet"


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.split()


def fleet_instances(ec2, project):
    """{instance id: private IP} of the project's running instances."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:Project", "Values": [project]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )
    return {i["InstanceId"]: i["PrivateIpAddress"] for page in pages for r in page["Reservations"] for i in r["Instances"]}


METADATA_PORT = 8169
ROLE = "dask-cluster-instance"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


class AWS:
    """What AWS knows and announces about the fleet's instances, beyond moto."""

    def __init__(self):
        self.lock = threading.Lock()
        self.addresses = {}  # private IP -> instance id, of the running instances
        self.tokens = set()
        self.waiting = {}  # instance id -> group, of instances in Terminating:Wait
        self.spot_notices = {}  # instance id -> the notice's JSON
        self.completed = []  # the lifecycle actions completed, in order

    def terminate(self, instance):
        """A termination the group starts: held by a termination hook, else at once."""
        autoscaling = boto3.client("autoscaling")
        [member] = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
        group = member["AutoScalingGroupName"]
        hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
        if any(h["LifecycleTransition"] == TERMINATING for h in hooks):
            with self.lock:
                self.waiting[instance] = group
            return "Terminating:Wait"
        autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=instance, ShouldDecrementDesiredCapacity=True)
        return "Terminating"

    def complete(self, params):
        """CompleteLifecycleAction: an error message, or None once the instance is terminated."""
        instance, group = params.get("InstanceId", ""), params.get("AutoScalingGroupName", "")
        hooks = boto3.client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
        if params.get("LifecycleHookName") not in [h["LifecycleHookName"] for h in hooks]:
            return "No lifecycle hook %s in group %s" % (params.get("LifecycleHookName"), group)
        with self.lock:
            if self.waiting.get(instance) != group:
                return "No active Lifecycle Action found with instance ID %s" % instance
            del self.waiting[instance]
            self.completed.append(dict(params, Time=time.time()))
        boto3.client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=instance, ShouldDecrementDesiredCapacity=True)
        return None


class Handler(BaseHTTPRequestHandler):
    aws: AWS

    def reply(self, status, body="", content_type="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("metadata/autoscaling: %s %s" % (self.client_address[0], fmt % args), flush=True)

    def do_PUT(self):
        if self.path == "/latest/api/token":
            token = secrets.token_hex(16)
            self.aws.tokens.add(token)
            return self.reply(200, token)
        return self.reply(404)

    def do_GET(self):
        aws = self.aws
        if self.path == "/fleet/lifecycle":
            return self.reply(200, json.dumps(aws.completed), "application/json")
        if not self.path.startswith("/latest/meta-data/"):
            return self.reply(404)
        if self.headers.get("X-aws-ec2-metadata-token") not in aws.tokens:
            return self.reply(401)
        instance = aws.addresses.get(self.client_address[0])
        if instance is None:
            return self.reply(404)
        path = self.path[len("/latest/meta-data/"):]
        if path == "instance-id":
            return self.reply(200, instance)
        if path == "autoscaling/target-lifecycle-state":
            return self.reply(200, "Terminated" if instance in aws.waiting else "InService")
        if path == "spot/instance-action" and instance in aws.spot_notices:
            return self.reply(200, aws.spot_notices[instance], "application/json")
        if path == "iam/security-credentials/":
            return self.reply(200, ROLE)
        if path == "iam/security-credentials/" + ROLE:
            now = datetime.now(timezone.utc)
            return self.reply(200, json.dumps({
                "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "testing", "SecretAccessKey": "testing",
                "Token": "testing", "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Expiration": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")}), "application/json")
        return self.reply(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        kind, dummy, instance = self.path[len("/fleet/"):].partition("/") if self.path.startswith("/fleet/") else ("", "", "")
        if kind == "terminate":
            return self.reply(200, self.aws.terminate(instance))
        if kind == "spot":
            at = (datetime.now(timezone.utc) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.aws.spot_notices[instance] = json.dumps({"action": "terminate", "time": at})
            return self.reply(200, at)
        params = dict(urllib.parse.parse_qsl(body.decode()))
        if params.get("Action") == "CompleteLifecycleAction":
            problem = self.aws.complete(params)
            if problem:
                return self.reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>"
                                       "<Message>%s</Message></Error></ErrorResponse>" % problem, "text/xml")
            return self.reply(200, '<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/'
                                   '2011-01-01/"><CompleteLifecycleActionResult/><ResponseMetadata><RequestId>'
                                   '%s</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>'
                                   % secrets.token_hex(8), "text/xml")
        # Any other Auto Scaling call: moto's answer.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(os.environ["AWS_ENDPOINT_URL"] + self.path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return self.reply(answer.status, answer.read(), answer.headers.get("Content-Type", "text/xml"))
        except urllib.error.HTTPError as exc:
            return self.reply(exc.code, exc.read(), exc.headers.get("Content-Type", "text/xml"))


def serve(aws, address):
    Handler.aws = aws
    server = ThreadingHTTPServer((address, METADATA_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main(project, network, cidr):
    options, image, command = systemd_host.docker_run_options(), os.environ["DASK_BASE_IMAGE"], systemd_host.command()
    if not docker("network", "ls", "-q", "--filter", f"name=^{network}$"):
        docker("network", "create", "--subnet", cidr, "--label", f"{LABEL}={project}", network)
    ec2 = boto3.client("ec2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    aws = AWS()
    serve(aws, str(next(ipaddress.ip_network(cidr).hosts())))
    while True:
        wanted = fleet_instances(ec2, project)
        aws.addresses = {ip: instance for instance, ip in wanted.items()}
        running = set(docker("ps", "-a", "--filter", f"label={LABEL}={project}", "--format", "{{.Names}}"))
        for instance in running - set(wanted):
            print(f"{instance}: terminated, removing its container", flush=True)
            docker("rm", "-f", instance, check=False)
        for instance in sorted(set(wanted) - running):
            print(f"{instance}: running at {wanted[instance]}, starting its container", flush=True)
            docker("run", "-d", "--name", instance, "--hostname", instance, "--label", f"{LABEL}={project}",
                   "--network", network, "--ip", wanted[instance], *options, image, *command)
        time.sleep(0.5)


if __name__ == "__main__":
    main(*sys.argv[1:4])
