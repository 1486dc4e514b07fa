"""Plays the part of EC2's hypervisors for the fleet scenario.

The moto server is EC2's control plane: provision.yml and scale.yml launch and
terminate instances there, and the aws_ec2 inventory reads them back. This process
gives every running instance of the project a machine: a systemd container named
after the instance id, on a Docker network with the VPC's address range, at the
instance's private IP. When an instance is terminated (or disappears in a reset),
its container is removed. The containers are made from the same base platform as
every other scenario (.config/molecule/config.yml).

    python ec2_hosts.py PROJECT NETWORK CIDR     (AWS_ENDPOINT_URL names the moto server)

Runs until SIGTERM. Each container carries the label dataplatform.dask.fleet=PROJECT,
which destroy.yml uses to clean up.
"""

import os
import signal
import subprocess
import sys
import time

import boto3
import yaml

LABEL = "dataplatform.dask.fleet"
BASE_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", ".config", "molecule", "config.yml")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.split()


def run_options(platform):
    """docker run options for a Molecule docker platform definition."""
    options = []
    options += [f"--cap-add={c}" for c in platform.get("capabilities", [])]
    options += [f"--security-opt={o}" for o in platform.get("security_opts", [])]
    options += [f"--volume={v}" for v in platform.get("volumes", [])]
    options += [f"--tmpfs={t}" for t in platform.get("tmpfs", [])]
    if "cgroupns_mode" in platform:
        options.append(f"--cgroupns={platform['cgroupns_mode']}")
    return options, platform["image"], platform["command"].split()


def fleet_instances(ec2, project):
    """{instance id: private IP} of the project's running instances."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:Project", "Values": [project]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )
    return {i["InstanceId"]: i["PrivateIpAddress"] for page in pages for r in page["Reservations"] for i in r["Instances"]}


def main(project, network, cidr):
    with open(BASE_CONFIG) as f:
        options, image, command = run_options(yaml.safe_load(f)["platforms"][0])
    if not docker("network", "ls", "-q", "--filter", f"name=^{network}$"):
        docker("network", "create", "--subnet", cidr, "--label", f"{LABEL}={project}", network)
    ec2 = boto3.client("ec2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        wanted = fleet_instances(ec2, project)
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
