"""Helpers every scenario's testinfra tests share: the hosts (docker backend, named
as in the inventory) and runs of the collection's own playbooks."""

import collections
import json
import os
import re
import signal
import subprocess
import threading
import time

import testinfra
import yaml

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.abspath(os.path.join(__file__, "../../..")))

PlaybookRun = collections.namedtuple("PlaybookRun", "rc output changed seconds")


def get_host(name):
    return testinfra.get_host(f"docker://{name}")


def flat(text):
    """Text with every run of whitespace as one space (Ansible wraps long messages)."""
    return " ".join(text.split())


def run_playbook(name, *args):
    """Run playbooks/<name> (or the playbook at an absolute path) against the
    scenario's inventory. ``changed`` maps each host of the recap to its changed count."""
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


def group_vars_file():
    """The scenario's group_vars/all (the variables of every host)."""
    return os.path.join(os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "group_vars", "all")


def run_playbook_interrupted(name, task, host, *args):
    """Run playbooks/<name> and interrupt it as Ctrl-C would (SIGINT), right after ``task`` has
    reported its result for ``host``: the next task may have begun by then, as with a person's
    Ctrl-C. Returns the PlaybookRun; fails if the playbook ended before that point."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    start = time.monotonic()
    process = subprocess.Popen(
        ["ansible-playbook", "-i", inventory, os.path.join(PROJECT, "playbooks", name), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PYTHONUNBUFFERED": "1"},
    )
    lines, in_task, interrupted = [], False, False
    # ansible-core 2.19 passes the SIGINT on to its workers; one killed while it holds the
    # results queue's lock leaves ansible-playbook waiting for that lock forever (seen here:
    # StrategyBase.cleanup blocked in SimpleQueue.put, a defunct worker). A person presses
    # Ctrl-C again, and so does this after a while; the second one ends it.
    again = threading.Timer(30, lambda: process.poll() is None and process.send_signal(signal.SIGINT))
    for line in process.stdout:
        lines.append(line)
        if line.startswith("TASK ["):
            in_task = line.split("]")[0].endswith(task)
        elif in_task and not interrupted and re.match(rf"^(ok|changed): \[{re.escape(host)}\]", line):
            process.send_signal(signal.SIGINT)
            interrupted = True
            again.start()
    rc = process.wait()
    again.cancel()
    output = "".join(lines)
    assert interrupted, f"{name} ended before {task} ran on {host}:\n{output[-3000:]}"
    return PlaybookRun(rc, output, {}, time.monotonic() - start)


def change_group_vars(**values):
    """Change the scenario's group_vars/all, as a platform engineer edits the inventory's
    group_vars: every later playbook run of the scenario sees the new values."""
    path = group_vars_file()
    with open(path) as f:
        group_vars = yaml.safe_load(f) or {}
    group_vars.update(values)
    with open(path, "w") as f:
        yaml.safe_dump(group_vars, f)


def current_environment(host):
    """The environment (<release>-<id>) the host's venvs/current link points at."""
    return host.check_output("readlink /opt/dask/venvs/current").rsplit("/", 1)[-1]


def main_pids(names, unit):
    """MainPID of unit on each host: unchanged means not restarted."""
    return {name: int(get_host(name).service(unit).systemd_properties["MainPID"]) for name in names}


def run_converge(*args):
    """Run the scenario's own converge.yml (its roles by FQCN) with more arguments."""
    return run_playbook(os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"), *args)


def inventory_listing(source, env=None):
    """`ansible-inventory --list` of an inventory source, as a dict."""
    out = subprocess.run(
        ["ansible-inventory", "-i", source, "--list"],
        capture_output=True, text=True, check=True, env={**os.environ, **(env or {})},
    ).stdout
    # Values from the AWS API come out marked unsafe ({"__ansible_unsafe": value}).
    return json.loads(out, object_hook=lambda d: d.get("__ansible_unsafe", d) if len(d) == 1 else d)


def group_hosts(listing, group):
    """Sorted hosts of one group of an inventory listing."""
    return sorted(listing.get(group, {}).get("hosts", []))
