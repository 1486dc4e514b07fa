#!/usr/bin/env python
"""How long deploying dataplatform.dask takes, next to the floors of the same machine.

For each N (--workers, default 2,4,8) and each repetition (--repeat, default 3), on fresh
systemd containers (as the Molecule scenarios create them: molecule/shared/systemd_host.yml) named
dask-bench-* on the network dask-bench, with the docker connection, in this order:

  Ansible floor       `ansible -m setup` over the 1 + N hosts: the least any run costs. Taken
                      on the fresh hosts and again just before the no-change run; the mean is used.
  install floor       on one more fresh container, by hand: apt-get install python3-venv,
                      docker cp + untar of the wheelhouse archive, venv + offline
                      `pip install --no-index --find-links`, then `dask scheduler` and
                      `dask worker` (plain TCP, no TLS, no systemd) until the worker is registered.
  Ansible floor 1     `ansible -m setup` over that one container (the floor of a scale-out).
  cold deploy         playbooks/site.yml on the fresh hosts. It ends when every worker is
                      registered (dask_worker waits for that with cluster_health).
  health              playbooks/health.yml right after: confirms the registration. Reported on
                      its own line, not counted in the cold deploy.
  no-change re-run    site.yml again on the converged cluster.
  --check             site.yml --check on the converged cluster.
  scale-out           one more worker added to the inventory, site.yml --limit that worker
                      (its preflight learns the scheduler's address from the scheduler);
                      then health.yml over N + 1 workers confirms it registered.
  rolling upgrade     the pin in the inventory moved to the collection's release, then
                      playbooks/rolling_upgrade.yml over the N + 1 workers, while the client
                      session of the Molecule scenarios (molecule/shared) holds results on
                      every worker and keeps submitting small tasks: seconds in all, of which
                      staging (the site.yml plays: new venvs on every host at once) and the
                      drained restarts (per worker: the batch plays / N + 1),
                      the client's throughput during / before (15 s before the run),
                      the fewest running workers it saw, results lost, tasks failed.

The cluster is deployed on the older release of the rolling-upgrade scenario
(DASK_UPGRADE_FROM_VERSION in scripts/env.sh), so that the upgrade has somewhere to go;
the install floor installs the same release.

Ratios: cold deploy / (install floor + Ansible floor), no-change and --check / Ansible
floor, scale-out / (install floor + Ansible floor 1). Growth: figure at the largest N /
figure at the smallest. Every figure is the median over the repetitions; the machine is
shared and noisy, so read the ratios, not the seconds.

CPU seconds of each figure, in the containers (their cgroups) and on the controller
(ansible and the docker clients it runs), are printed too: they change less with the
machine's load than the seconds do, and show what waits and what computes.

Every playbook runs with the ansible.posix.json stdout callback: its per-task durations are
the profile (what profile_tasks prints), its per-host results tell which tasks reported
changed on the no-change and --check runs and whether anything was installed twice.

Usage: scripts/bench.py [--workers 2,4,8] [--repeat 3] [--forks 5] [--pipelining on|off]
                        [--connection community.docker.docker_api] [--profile 15]
                        [--output .cache/bench/bench.json]
Run with the repo's venv after `scripts/harness.sh engine image venv wheelhouse` (`make bench`
does both). Logs of every command: beside the output (.cache/bench/bench-logs/). Containers
are removed at the end, and on an error or SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "molecule" / "shared"))
from bench_report import (  # noqa: E402  (this directory: what the figures mean and how they print)
    FIGURES, RESTART_PLAY, THROUGHPUT_BEFORE_SECONDS, archive_of, changed_tasks, cpu_medians_by_size,
    format_table, goals, growth, installed_twice, medians_by_size, play_seconds, ratios_by_size, task_seconds,
    tasks_run, upgrade_by_size, upgrade_figures)
from client_session import Session  # noqa: E402  (the scenarios' client session, testinfra)
import systemd_host  # noqa: E402  (this directory: the hosts' container settings)

PREFIX = "dask-bench"
NETWORK = "dask-bench"
LABEL = "dataplatform.dask.bench"
FLOOR_HOST = PREFIX + "-floor"
SCHEDULER = PREFIX + "-scheduler"

FLOOR_REGISTERED = """
import json, time, urllib.request
deadline = time.time() + 120
while time.time() < deadline:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8787/json/identity.json", timeout=2) as r:
            if json.load(r)["workers"]:
                raise SystemExit(0)
    except OSError:
        pass
    time.sleep(0.1)
raise SystemExit("no worker registered within 120 s")
"""


# ---------------------------------------------------------------- machine side

def harness_env(args):
    """The environment of scripts/env.sh (one definition), plus the run's knobs."""
    out = subprocess.run(["bash", "-c", "source scripts/env.sh && env -0"], cwd=REPO, check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    env = dict(line.split("=", 1) for line in out.split("\0") if "=" in line)
    env.update(ANSIBLE_PIPELINING=str(args.pipelining == "on"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_JSON_INDENT="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    return env


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()


def platform_options(image):
    """docker run options, image and command of a systemd host as the Molecule scenarios create it."""
    return systemd_host.docker_run_options() + [image] + systemd_host.command()


def start_hosts(names, image):
    """Fresh systemd containers, booted (not timed)."""
    for name in names:
        docker("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--label", LABEL + "=true",
               *platform_options(image))
    for name in names:
        state = docker("exec", name, "systemctl", "is-system-running", "--wait", check=False)
        if state not in ("running", "degraded"):
            raise SystemExit("container %s did not boot (systemd: %s)" % (name, state))


def remove_hosts():
    """Remove this benchmark's containers (by label) and its network; nothing else."""
    ids = docker("ps", "-aq", "--filter", "label=%s=true" % LABEL).split()
    if ids:
        docker("rm", "-f", *ids)
    docker("network", "rm", NETWORK, check=False)


def run(cmd, env, log):
    """Seconds the command took; its output goes to log (and .stderr). Fails loudly."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out, open(str(log) + ".stderr", "w", encoding="utf-8") as err:
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=err, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit("failed (rc %d): %s\n  see %s and %s.stderr" % (proc.returncode, " ".join(map(str, cmd)), log, log))
    return seconds


def cpu_seconds():
    """(CPU seconds of this benchmark's containers, of this process's finished children).

    Containers: their cgroup's accounting (v1 cpuacct, or v2 cpu.stat), None where not readable.
    Children: ansible, ansible-playbook, their forks and the docker clients they run.
    """
    hosts = 0.0
    for cid in docker("ps", "-q", "--no-trunc", "--filter", "label=%s=true" % LABEL).split():
        for path, scale in (("/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % cid, 1e-9),
                            ("/sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat" % cid, 1e-6)):
            try:
                with open(path, encoding="ascii") as f:
                    hosts += int(f.read().split()[1 if path.endswith("stat") else 0]) * scale
                break
            except (OSError, ValueError, IndexError):
                continue
        else:
            hosts = None
            break
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return hosts, children.ru_utime + children.ru_stime


def role_defaults():
    with open(REPO / "roles" / "dask_common" / "defaults" / "main.yml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def write_inventory(path, workers, ca_dir, env, connection, version):
    group_vars = {
        "ansible_connection": connection,
        "ansible_python_interpreter": "/usr/bin/python3",
        "dask_common_wheelhouse_dir": env["DASK_WHEELHOUSE_DIR"],
        "dask_common_tls_ca_dir": str(ca_dir),
        "dask_common_version": version,
        # 10 containers share the machine: a small fixed share per worker.
        "dask_worker_nthreads": 1,
        "dask_worker_memory_limit_mb": 1024,
    }
    inventory = {"all": {"vars": group_vars, "children": {
        "dask_schedulers": {"hosts": {SCHEDULER: None}},
        "dask_workers": {"hosts": {w: None for w in workers}},
    }}}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(inventory, f)


class Round:
    """One repetition at one N: containers, the measurements, their logs."""

    def __init__(self, workers, rep, args, env, workdir, logdir):
        self.n, self.rep, self.args, self.env = workers, rep, args, env
        self.workdir, self.logdir = workdir, logdir
        self.workers = ["%s-worker-%d" % (PREFIX, i) for i in range(1, workers + 2)]  # the last one scales out
        self.inventory = workdir / "hosts.yml"
        self.record = {"workers": workers, "rep": rep, "seconds": {}, "cpu_seconds": {}, "install_floor_parts": {},
                       "changed": {}, "top_tasks": {}, "outside_tasks_seconds": {}, "tasks_run": {}}

    def timed(self, key, commands):
        """Runs the commands one after the other; records their seconds and CPU seconds under key."""
        hosts_before, controller_before = cpu_seconds()
        seconds = 0.0
        for i, cmd in enumerate(commands):
            seconds += run(cmd, self.env, self.logdir / ("N%d-r%d-%s-%d.log" % (self.n, self.rep, key, i)))
        hosts_after, controller_after = cpu_seconds()
        self.record["seconds"][key] = seconds
        self.record["cpu_seconds"][key] = {
            "hosts": None if hosts_before is None or hosts_after is None else hosts_after - hosts_before,
            "controller": controller_after - controller_before}
        return self.logdir / ("N%d-r%d-%s-%d.log" % (self.n, self.rep, key, len(commands) - 1))

    def playbook(self, key, playbook, *extra):
        """Runs a playbook; returns its ansible.posix.json result and keeps its profile."""
        log = self.timed(key, [["ansible-playbook", "-i", str(self.inventory), "-f", str(self.args.forks),
                                str(REPO / "playbooks" / playbook), *extra]])
        with open(log, encoding="utf-8") as f:
            text = f.read()
        result = json.loads(text[text.index("{"):])
        tasks = task_seconds(result)
        self.record["top_tasks"][key] = tasks[:self.args.profile]
        self.record["tasks_run"][key] = tasks_run(result)
        # Start-up, parsing, includes, templating between tasks.
        self.record["outside_tasks_seconds"][key] = self.record["seconds"][key] - sum(s for s, dummy in tasks)
        return result

    def ansible_floor(self, key, inventory):
        self.timed(key, [["ansible", "all", "-i", str(inventory), "-f", str(self.args.forks), "-m", "ansible.builtin.setup"]])

    def mean(self, key, *keys):
        """Records under key the mean of the figures of keys (seconds and CPU seconds)."""
        seconds, cpu = self.record["seconds"], self.record["cpu_seconds"]
        seconds[key] = statistics.mean(seconds[k] for k in keys)
        cpu[key] = {side: None if any(cpu[k][side] is None for k in keys) else statistics.mean(cpu[k][side] for k in keys)
                    for side in ("hosts", "controller")}

    def install_floor(self, version):
        # The default environment of the role; the archive unpacks to its environment's name.
        defaults = role_defaults()
        packages = [p.replace("{{ dask_common_version }}", version)
                    for p in defaults["dask_common_packages"] + defaults["dask_common_data_packages"]]
        archive = archive_of(self.env["DASK_WHEELHOUSE_DIR"], version, packages,
                             defaults["dask_common_wheelhouse_python_version"])
        top = archive.name[len("dask-"):].rsplit("-py", 1)[0]
        on_host = ["docker", "exec", FLOOR_HOST]
        steps = {
            "floor_os_packages": [on_host + ["sh", "-c", "apt-get update -q && "
                                             "DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv"]],
            "floor_copy_unpack": [["docker", "cp", str(archive), FLOOR_HOST + ":/opt/wheelhouse.tar"],
                                  on_host + ["tar", "-C", "/opt", "-xf", "/opt/wheelhouse.tar"]],
            "floor_venv_pip": [on_host + ["sh", "-c", "python3 -m venv /opt/venv && /opt/venv/bin/pip install -q "
                                          "--disable-pip-version-check --no-index --find-links /opt/%s %s"
                                          % (top, " ".join("'%s'" % p for p in packages))]],
            "floor_start_registered": [
                ["docker", "exec", "-d", FLOOR_HOST, "/opt/venv/bin/dask", "scheduler", "--host", "127.0.0.1",
                 "--dashboard-address", "127.0.0.1:8787"],
                ["docker", "exec", "-d", FLOOR_HOST, "/opt/venv/bin/dask", "worker", "tcp://127.0.0.1:8786",
                 "--nanny", "--nthreads", "1", "--memory-limit", "1024MiB"],
                on_host + ["python3", "-c", FLOOR_REGISTERED]],
        }
        for key, commands in steps.items():
            self.timed(key, commands)
        seconds, cpu = self.record["seconds"], self.record["cpu_seconds"]
        self.record["install_floor_parts"] = {k: seconds.pop(k) for k in steps}
        seconds["install_floor"] = sum(self.record["install_floor_parts"].values())
        parts = [cpu.pop(k) for k in steps]
        cpu["install_floor"] = {side: None if any(p[side] is None for p in parts) else sum(p[side] for p in parts)
                                for side in ("hosts", "controller")}

    def write_inventory(self, workers, version):
        write_inventory(self.inventory, workers, self.workdir / "ca", self.env, self.args.connection, version)

    def rolling_upgrade(self, version):
        """The pin moved to version, then rolling_upgrade.yml under a client session."""
        self.write_inventory(self.workers, version)
        session = Session(SCHEDULER, "bench-upgrade", len(self.workers))
        time.sleep(THROUGHPUT_BEFORE_SECONDS)
        started = time.time()
        result = self.playbook("rolling_upgrade", "rolling_upgrade.yml")
        finished = time.time()
        report = session.finish()
        restarts = play_seconds(result, RESTART_PLAY)
        self.record["seconds"]["rolling_upgrade_stage"] = self.record["seconds"]["rolling_upgrade"] - restarts
        self.record["seconds"]["rolling_upgrade_per_worker"] = restarts / len(self.workers)
        self.record["upgrade"] = upgrade_figures(report, started, finished)
        self.record["upgrade"]["removals"] = report["removals"]

    def measure(self):
        say("N=%d rep %d: starting %d containers" % (self.n, self.rep, self.n + 3))
        start_hosts([SCHEDULER, FLOOR_HOST] + self.workers, self.env["DASK_BASE_IMAGE"])
        old, new = self.env["DASK_UPGRADE_FROM_VERSION"], role_defaults()["dask_common_version"]
        self.write_inventory(self.workers[:-1], old)
        with open(self.workdir / "floor.yml", "w", encoding="utf-8") as f:
            yaml.safe_dump({"all": {"hosts": {FLOOR_HOST: None}, "vars": {
                "ansible_connection": self.args.connection, "ansible_python_interpreter": "/usr/bin/python3"}}}, f)
        say("  floors")
        self.ansible_floor("ansible_floor_fresh", self.inventory)
        self.ansible_floor("ansible_floor_1", self.workdir / "floor.yml")
        self.install_floor(old)
        docker("rm", "-f", FLOOR_HOST)  # its Dask processes would take CPU from what follows
        say("  cold deploy")
        cold = self.playbook("cold_deploy", "site.yml")
        self.record["installed_twice"] = installed_twice(cold)
        self.record["changed"]["cold_deploy"] = len(changed_tasks(cold))
        self.playbook("health", "health.yml")
        # Again next to the runs it is the floor of, in case the machine's load changed.
        self.ansible_floor("ansible_floor_converged", self.inventory)
        self.mean("ansible_floor", "ansible_floor_fresh", "ansible_floor_converged")
        say("  no-change re-run, --check")
        self.record["changed"]["no_change"] = changed_tasks(self.playbook("no_change", "site.yml"))
        self.record["changed"]["check"] = changed_tasks(self.playbook("check", "site.yml", "--check"))
        say("  scale-out")
        self.write_inventory(self.workers, old)
        self.playbook("scale_out", "site.yml", "--limit", self.workers[-1])
        self.playbook("health_scaled", "health.yml")
        say("  rolling upgrade %s -> %s of %d workers" % (old, new, len(self.workers)))
        self.rolling_upgrade(new)
        say("  " + ", ".join("%s %.1fs" % kv for kv in self.record["seconds"].items()))
        return self.record


def say(text):
    print("[bench] " + text, file=sys.stderr, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="2,4,8", help="comma-separated N (workers per cluster)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per N (the median is reported)")
    parser.add_argument("--forks", type=int, default=5, help="ansible forks (-f); Ansible's default is 5")
    parser.add_argument("--pipelining", choices=["on", "off"], default="on", help="ANSIBLE_PIPELINING")
    parser.add_argument("--connection", default="community.docker.docker",
                        help="ansible_connection of every host (community.docker.docker_api: no docker CLI per task)")
    parser.add_argument("--profile", type=int, default=15, help="how many of the longest tasks to keep and print")
    parser.add_argument("--output", type=Path, default=REPO / ".cache" / "bench" / "bench.json")
    args = parser.parse_args(argv)
    args.workers = sorted(int(n) for n in args.workers.split(","))
    return args


def main(argv=None):
    args = parse_args(argv)
    env = harness_env(args)
    logdir = args.output.parent / (args.output.stem + "-logs")
    logdir.mkdir(parents=True, exist_ok=True)
    settings = {"workers": args.workers, "repeat": args.repeat, "forks": args.forks, "pipelining": args.pipelining,
                "connection": args.connection,
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "cpus": os.cpu_count(), "load_average_start": os.getloadavg()}
    signal.signal(signal.SIGTERM, lambda *dummy: sys.exit("terminated"))
    rounds = []
    remove_hosts()
    try:
        # Repetitions outermost: a burst of load from elsewhere hits one repetition of every N.
        for rep in range(1, args.repeat + 1):
            for n in args.workers:
                docker("network", "create", "--label", LABEL + "=true", NETWORK)
                try:
                    with tempfile.TemporaryDirectory(prefix="dask-bench-") as workdir:
                        rounds.append(Round(n, rep, args, env, Path(workdir), logdir).measure())
                finally:
                    remove_hosts()
    finally:
        remove_hosts()
    settings["load_average_end"] = os.getloadavg()
    medians = medians_by_size(rounds)
    ratios = ratios_by_size(medians)
    report = goals(medians, ratios, rounds)
    cpu = cpu_medians_by_size(rounds)
    upgrade = upgrade_by_size(rounds)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"settings": settings, "medians": medians, "ratios": ratios, "cpu_seconds": cpu, "upgrade": upgrade,
                   "growth": {key: growth(medians, key) for key, dummy, dummy2 in FIGURES},
                   "goals": [{"goal": g, "value": v, "met": m} for g, v, m in report], "rounds": rounds}, f, indent=1)
    print("dataplatform.dask bench: 1 scheduler + N workers (containers), %s, forks %d, pipelining %s, load %.1f -> %.1f"
          % (args.connection, args.forks, args.pipelining, settings["load_average_start"][0], settings["load_average_end"][0]))
    print(format_table(medians, ratios, settings, cpu, upgrade))
    print("\ngoals (reported, not asserted):")
    for goal, value, met in report:
        print("  %-7s %-55s %s" % ({True: "met", False: "MISSED", None: "n/a"}[met], goal, value))
    first = rounds[0]
    for key in ("cold_deploy", "no_change"):
        print("\nlongest tasks of %s, N=%d rep 1 (seconds; %d tasks ran; %.1f s outside tasks):"
              % (key, first["workers"], first["tasks_run"][key], first["outside_tasks_seconds"][key]))
        for seconds, name in first["top_tasks"][key]:
            print("  %7.2f  %s" % (seconds, name))
    print("\nwritten: %s (logs: %s)" % (args.output, logdir))


if __name__ == "__main__":
    main()
