"""Helpers every scenario's testinfra tests share: the hosts (docker backend, named
as in the inventory) and runs of the collection's own playbooks."""

import collections
import os
import re
import subprocess
import time

import testinfra

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.abspath(os.path.join(__file__, "../../..")))

PlaybookRun = collections.namedtuple("PlaybookRun", "rc output changed seconds")


def get_host(name):
    return testinfra.get_host(f"docker://{name}")


def flat(text):
    """Text with every run of whitespace as one space (Ansible wraps long messages)."""
    return " ".join(text.split())


def run_playbook(name, *args):
    """Run playbooks/<name> against the scenario's inventory. ``changed`` maps each
    host of the recap to its changed count."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    start = time.monotonic()
    run = subprocess.run(
        ["ansible-playbook", "-i", inventory, os.path.join(PROJECT, "playbooks", name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        check=False,
    )
    output = run.stdout + run.stderr
    recap = output.split("PLAY RECAP")[-1]
    changed = {host: int(n) for host, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", recap, re.M)}
    return PlaybookRun(run.returncode, output, changed, time.monotonic() - start)
