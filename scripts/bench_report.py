"""What scripts/bench.py reports: the arithmetic over its repetitions (medians, ratios to
the floors, growth, the goals) and the reading of each playbook's ansible.posix.json
result (changed tasks, installs, task and play seconds), with the table it prints.
Pure functions, unit-tested in tests/unit/scripts/test_bench.py; scripts/bench.py measures.
"""

from __future__ import annotations

import datetime
import statistics
from pathlib import Path

# (key, label, floor keys whose sum divides the figure, or None)
FIGURES = [
    ("ansible_floor", "Ansible floor: setup, 1+N hosts (mean of 2)", None),
    ("install_floor", "install floor: 1 host by hand", None),
    ("ansible_floor_1", "Ansible floor: setup over 1 host", None),
    ("cold_deploy", "cold deploy (site.yml, registered)", ("install_floor", "ansible_floor")),
    ("health", "health.yml after the deploy", None),
    ("no_change", "no-change re-run", ("ansible_floor",)),
    ("check", "--check run", ("ansible_floor",)),
    ("scale_out", "scale-out +1 worker (--limit)", ("install_floor", "ansible_floor_1")),
    ("rolling_upgrade", "rolling upgrade, N+1 workers", None),
    ("rolling_upgrade_stage", "  staging (site.yml, all hosts)", None),
    ("rolling_upgrade_per_worker", "  drained restart, per worker", None),
]
# The play of rolling_upgrade.yml that restarts the workers, a batch at a time (each of
# its batches is a play in the ansible.posix.json result); the plays before it stage.
RESTART_PLAY = "Restart the workers with a restart pending"
# How the client session fared through the rolling upgrade: (key, label, how the worst
# repetition is picked, or None for the median of the repetitions).
UPGRADE_FIGURES = [
    ("throughput_kept", "  throughput kept, during/before (median)", None),
    ("min_running_workers", "  fewest running workers seen (worst)", min),
    ("results_lost", "  results lost (worst)", max),
    ("tasks_failed", "  client tasks failed (worst)", max),
]
# Client throughput is measured this long before the rolling upgrade starts.
THROUGHPUT_BEFORE_SECONDS = 15
# Actions that install software; one host should change each at most once in a deploy.
INSTALL_ACTIONS = ("apt", "package", "dnf", "yum", "pip", "unarchive")


def median(values):
    """Median of the values that are not None, or None."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(value, floors):
    """value / sum(floors), or None when anything is missing."""
    if value is None or not floors or any(f is None for f in floors) or not sum(floors):
        return None
    return value / sum(floors)


def medians_by_size(rounds):
    """{N: {figure: median seconds}} over the repetitions of each N."""
    sizes = sorted({r["workers"] for r in rounds})
    keys = sorted({k for r in rounds for k in r["seconds"]})
    return {n: {k: median([r["seconds"].get(k) for r in rounds if r["workers"] == n]) for k in keys} for n in sizes}


def cpu_medians_by_size(rounds):
    """{N: {figure: {"hosts": median CPU s, "controller": median CPU s}}}."""
    sizes = sorted({r["workers"] for r in rounds})
    keys = sorted({k for r in rounds for k in r["cpu_seconds"]})
    return {n: {k: {side: median([r["cpu_seconds"].get(k, {}).get(side) for r in rounds if r["workers"] == n])
                    for side in ("hosts", "controller")} for k in keys} for n in sizes}


def upgrade_by_size(rounds):
    """{N: {figure: median or worst over the repetitions}} of the client session's figures."""
    out = {}
    for n in sorted({r["workers"] for r in rounds}):
        out[n] = {}
        for key, dummy, worst in UPGRADE_FIGURES:
            values = [r["upgrade"][key] for r in rounds
                      if r["workers"] == n and r.get("upgrade") and r["upgrade"].get(key) is not None]
            out[n][key] = (worst or median)(values) if values else None
    return out


def throughput(timeline, start, end):
    """Tasks per second the client completed between start and end, from its samples
    [(time, running workers, completed tasks)]; None with fewer than two samples."""
    points = [p for p in timeline if start <= float(p[0]) <= end]
    if len(points) < 2 or float(points[-1][0]) == float(points[0][0]):
        return None
    return (points[-1][2] - points[0][2]) / (float(points[-1][0]) - float(points[0][0]))


def upgrade_figures(report, started, finished):
    """The figures of one rolling upgrade from the client session's report."""
    before = throughput(report["timeline"], started - THROUGHPUT_BEFORE_SECONDS, started)
    during = throughput(report["timeline"], started, finished)
    return {
        "throughput_before": before,
        "throughput_during": during,
        "throughput_kept": ratio(during, [before]),
        "min_running_workers": report["min_running_workers"],
        "results_held": report["held"],
        "results_lost": len(report["lost"]),
        "tasks_failed": report["failed"],
    }


def ratios_by_size(medians):
    """{N: {figure: ratio to its floor}} for the figures that have one."""
    return {n: {key: ratio(m.get(key), [m.get(f) for f in floors]) for key, dummy, floors in FIGURES if floors}
            for n, m in medians.items()}


def growth(medians, key):
    """Figure at the largest N / at the smallest N (None with fewer than two sizes)."""
    sizes = sorted(medians)
    if len(sizes) < 2:
        return None
    return ratio(medians[sizes[-1]].get(key), [medians[sizes[0]].get(key)])


def task_results(playbook_json):
    """(task name, host, result) of every host result of an ansible.posix.json output."""
    for play in playbook_json.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                yield task["task"]["name"], host, result


def changed_tasks(playbook_json):
    """Sorted 'task (host, ...)' of the tasks that reported changed."""
    hosts = {}
    for name, host, result in task_results(playbook_json):
        if result.get("changed"):
            hosts.setdefault(name, set()).add(host)
    return sorted("%s (%s)" % (name, ", ".join(sorted(h))) for name, h in hosts.items())


def tasks_run(playbook_json):
    """How many tasks ran (were not skipped) on at least one host."""
    return sum(1 for play in playbook_json.get("plays", []) for task in play.get("tasks", [])
               if any(not r.get("skipped") for r in task.get("hosts", {}).values()))


def _is_install(result):
    action = result.get("action", "").rsplit(".", 1)[-1]
    if action in INSTALL_ACTIONS:
        return True
    cmd = result.get("cmd") or []
    cmd = cmd if isinstance(cmd, list) else cmd.split()
    return action in ("command", "shell") and any(c.endswith("pip") for c in cmd) and "install" in cmd


def installed_twice(playbook_json):
    """'host: action x times' for every host on which one install action changed more than once."""
    counts = {}
    for dummy, host, result in task_results(playbook_json):
        if result.get("changed") and _is_install(result):
            key = (host, result["action"])
            counts[key] = counts.get(key, 0) + 1
    return sorted("%s: %s %d times" % (host, action, n) for (host, action), n in counts.items() if n > 1)


def _parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def task_seconds(playbook_json):
    """[(seconds, task name)] summed by name over a run, longest first (the profile)."""
    totals = {}
    for play in playbook_json.get("plays", []):
        for task in play.get("tasks", []):
            duration = task["task"]["duration"]
            if "end" in duration:
                seconds = (_parse_time(duration["end"]) - _parse_time(duration["start"])).total_seconds()
                totals[task["task"]["name"]] = totals.get(task["task"]["name"], 0.0) + seconds
    return sorted(((s, n) for n, s in totals.items()), key=lambda t: (-t[0], t[1]))


def play_seconds(playbook_json, name_prefix):
    """Seconds spent in the plays whose name starts with name_prefix."""
    total = 0.0
    for play in playbook_json.get("plays", []):
        duration = play["play"]["duration"]
        if play["play"]["name"].startswith(name_prefix) and "end" in duration:
            total += (_parse_time(duration["end"]) - _parse_time(duration["start"])).total_seconds()
    return total


def archive_of(wheelhouse_dir, version, packages, python_version):
    """The wheelhouse archive of version whose recorded package list is packages
    (the role names archives dask-<version>-<id>-py<python>.tar, <id> a hash of that list)."""
    for archive in sorted(Path(wheelhouse_dir).glob("dask-%s-*-py%s.tar" % (version, python_version))):
        recorded = Path(str(archive) + ".requirements").read_text(encoding="utf-8").split()
        if [p for p in recorded if not p.startswith("--")] == packages:
            return archive
    raise SystemExit("no wheelhouse archive of Dask %s with %s in %s: run scripts/harness.sh wheelhouse"
                     % (version, packages, wheelhouse_dir))


def goals(medians, ratios, rounds):
    """[(goal, value text, met)] of the issue's targets (reported, not asserted)."""
    result = []
    sizes = sorted(medians)
    first = sizes[0]
    result.append(("no-change re-run <= 4 x Ansible floor (N=%d)" % first,
                   _x(ratios[first].get("no_change")), _le(ratios[first].get("no_change"), 4)))
    result.append(("cold deploy <= 2 x (install + Ansible floor) (N=%d)" % first,
                   _x(ratios[first].get("cold_deploy")), _le(ratios[first].get("cold_deploy"), 2)))
    for key in ("cold_deploy", "no_change", "check", "scale_out"):
        value = growth(medians, key)
        result.append(("growth N=%d->%d of %s <= 2x" % (first, sizes[-1], key), _x(value), _le(value, 2)))
    twice = sorted({t for r in rounds for t in r["installed_twice"]})
    result.append(("nothing installed twice per host (cold deploy)", "; ".join(twice) or "none", not twice))
    changed = sorted({t for r in rounds for t in r["changed"]["no_change"]})
    result.append(("no task reports changed on a no-change re-run", "; ".join(changed) or "none", not changed))
    return result


def _x(value):
    return "n/a" if value is None else "%.2fx" % value


def _le(value, limit):
    return None if value is None else value <= limit


def format_table(medians, ratios, settings, cpu=None, upgrade=None):
    """The human table: medians per N, ratios to the floors, growth; the client session's
    figures of the rolling upgrade and CPU seconds if given."""
    sizes = sorted(medians)
    head = "%-42s" % "seconds, median of %d" % settings["repeat"] + "".join("%9s" % ("N=%d" % n) for n in sizes)
    head += "%10s" % ("N=%d/N=%d" % (sizes[-1], sizes[0]) if len(sizes) > 1 else "")
    lines = [head]
    for key, label, floors in FIGURES:
        cells = "".join("%9s" % ("-" if medians[n].get(key) is None else "%.1f" % medians[n][key]) for n in sizes)
        lines.append("%-42s%s%10s" % (label, cells, _x(growth(medians, key)) if len(sizes) > 1 else ""))
        if floors:
            cells = "".join("%9s" % _x(ratios[n].get(key)) for n in sizes)
            lines.append("%-42s%s" % ("  / (" + " + ".join(floors) + ")", cells))
    if upgrade:
        for key, label, dummy in UPGRADE_FIGURES:
            cells = "".join("%9s" % _upgrade_cell(key, (upgrade.get(n) or {}).get(key)) for n in sizes)
            lines.append("%-42s%s" % (label, cells))
    if cpu:
        lines.append("CPU seconds, median: containers+controller")
        for key, label, dummy in FIGURES:
            cells = "".join("%9s" % _cpu(cpu[n].get(key)) for n in sizes)
            lines.append("%-42s%s" % ("  " + label, cells))
    return "\n".join(lines)


def _upgrade_cell(key, value):
    if value is None:
        return "-"
    return "%.0f%%" % (100 * value) if key == "throughput_kept" else "%d" % value


def _cpu(value):
    if not value or value["controller"] is None:
        return "-"
    return "%s+%.0f" % ("?" if value["hosts"] is None else "%.0f" % value["hosts"], value["controller"])
