"""Fixtures of the AWS integration tests: the local AWS API (the moto server the
harness starts on loopback, reset for every test) and runs of the collection's
inventory and playbooks against it."""

import collections
import json
import os
import re
import subprocess
import urllib.request

import boto3
import pytest

PROJECT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INVENTORY = os.path.join(PROJECT, "inventories", "production", "production.aws_ec2.yml")
ENDPOINT = os.environ.get("DASK_MOTO_ENDPOINT", "http://127.0.0.1:5055")
# scripts/ and molecule/shared (inventory listings, flat) are on the path (tests/pytest.ini).
import moto_platform
from helpers import inventory_listing

Run = collections.namedtuple("Run", "rc output changed")


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    """Credentials and region for the moto server, and a reset before each test."""
    try:
        urllib.request.urlopen(f"{ENDPOINT}/moto-api/", timeout=5)
    except OSError as e:
        pytest.fail(f"no moto server at {ENDPOINT} ({e}): run scripts/harness.sh moto")
    for name, value in {
        "AWS_ENDPOINT_URL": ENDPOINT,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }.items():
        monkeypatch.setenv(name, value)
    moto_platform.reset(ENDPOINT)


@pytest.fixture
def platform():
    """The VPC and subnets provision.yml expects to find: its inputs as extra vars."""
    return moto_platform.create("us-west-2")


def ansible_inventory(env=None):
    return inventory_listing(INVENTORY, env)


def run_playbook(name, extra_vars=None, *args, env=None):
    """Run playbooks/<name> on the controller only (no fleet hosts to reach)."""
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", os.path.join(PROJECT, "playbooks", name),
         "-e", json.dumps(extra_vars or {}), *args],
        capture_output=True, text=True, check=False, env=env or os.environ.copy(),
    )
    output = run.stdout + run.stderr
    changed = re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)", output, re.M)
    return Run(run.returncode, output, int(changed.group(1)) if changed else None)


def ec2():
    return boto3.client("ec2")
