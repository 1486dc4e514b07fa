# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publish a Dask cluster's load to CloudWatch, once (a systemd timer runs it).

Installed by the dataplatform.dask.dask_monitoring role on the scheduler host as
dask-cloudwatch-publisher.service. It reads the scheduler's dashboard (the same HTTP
server that serves /health): ``/json/identity.json`` (every worker with its threads,
memory limit, status and its last heartbeat's task counts and process memory) and
``/metrics`` (the scheduler's task counts by state). From these ``cluster_figures``
computes, in this one place:

- ClusterUtilization (Percent): busy threads / threads of the workers that take work.
  A thread is busy while it executes a task; a paused worker (memory pressure) counts as
  fully busy, since it takes no work. No thread at all but work waiting counts as 100.
- QueuedTasks (Count): tasks that could run now but have no thread: queued and no-worker
  on the scheduler, ready and constrained on the workers.
- Workers (Count): workers running or paused (not retiring, not closing).
- MemoryUsed (Bytes): the process memory of those workers.
- MemoryUtilization (Percent): MemoryUsed / their memory limits.
- CertificateDaysLeft (None): days until the sooner of the scheduler host's certificate and
  the cluster CA expire, from the dask_tls.prom that dask_common writes for node exporter
  (``certificate_file``); left out when there is none (TLS off).

and puts them into the CloudWatch namespace with the dimension ClusterName. It runs with
the system's Python and Debian's python3-boto3 (credentials from the instance role);
every failure is logged and ends the run with status 1, leaving the scheduler alone.

    python3 /usr/local/lib/dask-monitoring/dask_cloudwatch_publisher.py \
        --config /etc/dask-monitoring/cloudwatch-publisher.json [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request

LOG = logging.getLogger("dask-cloudwatch-publisher")

# Worker statuses whose threads can take work (threads of the others are being retired).
TAKING_WORK = ("running",)
PAUSED = ("paused",)
# Task states that wait for a thread: on the scheduler (prometheus label), on a worker.
SCHEDULER_WAITING_STATES = ("queued", "no-worker")
WORKER_WAITING_STATES = ("ready", "constrained")

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


class PublisherError(Exception):
    """A foreseeable failure, as one sentence for the journal."""


def parse_prometheus(text):
    """Samples of a Prometheus text exposition: ``{(name, ((label, value), ...)): float}``."""
    samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = tuple(sorted((m.group("key"), m.group("value")) for m in _LABEL.finditer(match.group("labels") or "")))
        try:
            samples[(match.group("name"), labels)] = float(match.group("value"))
        except ValueError:
            continue
    return samples


def scheduler_task_counts(metrics_text):
    """The scheduler's ``dask_scheduler_tasks{state=...}`` as ``{state: count}``.

    Dask answers /metrics with a comment line only when prometheus_client is missing:
    that is an error here, not a cluster without tasks.
    """
    counts = {}
    for (name, labels), value in parse_prometheus(metrics_text).items():
        if name == "dask_scheduler_tasks":
            counts[dict(labels).get("state")] = value
    if not counts:
        raise PublisherError(
            "The scheduler's /metrics has no dask_scheduler_tasks samples: prometheus-client is missing "
            "from the Dask venv (it is in dask_common_packages; re-run site.yml)."
        )
    return counts


def cluster_figures(identity, task_counts):
    """The published figures from the scheduler's identity and its task counts by state."""
    threads = busy = waiting_on_workers = workers = memory_used = memory_limit = 0
    for info in (identity.get("workers") or {}).values():
        status = info.get("status")
        if status not in TAKING_WORK + PAUSED:
            continue
        nthreads = int(info.get("nthreads") or 0)
        metrics = info.get("metrics") or {}
        counts = metrics.get("task_counts") or {}
        workers += 1
        threads += nthreads
        busy += nthreads if status in PAUSED else min(int(counts.get("executing", 0)), nthreads)
        waiting_on_workers += sum(int(counts.get(state, 0)) for state in WORKER_WAITING_STATES)
        memory_used += int(metrics.get("memory") or 0)
        memory_limit += int(info.get("memory_limit") or 0)
    queued = int(sum(task_counts.get(state, 0) for state in SCHEDULER_WAITING_STATES)) + waiting_on_workers
    if threads:
        utilization = 100.0 * busy / threads
    else:
        # No thread to run anything: saturated if work waits, idle otherwise.
        utilization = 100.0 if queued else 0.0
    return {
        "ClusterUtilization": round(utilization, 2),
        "QueuedTasks": queued,
        "Workers": workers,
        "BusyThreads": busy,
        "Threads": threads,
        "MemoryUsed": memory_used,
        "MemoryUtilization": round(100.0 * memory_used / memory_limit, 2) if memory_limit else 0.0,
    }


def certificate_days_left(prom_text, now):
    """Days until the soonest ``dask_tls_certificate_not_after_seconds`` of a textfile, or None."""
    ends = [value for (name, dummy), value in parse_prometheus(prom_text).items()
            if name == "dask_tls_certificate_not_after_seconds"]
    return round((min(ends) - now) / 86400.0, 1) if ends else None


UNITS = {
    "ClusterUtilization": "Percent",
    "QueuedTasks": "Count",
    "Workers": "Count",
    "MemoryUsed": "Bytes",
    "MemoryUtilization": "Percent",
    "CertificateDaysLeft": "None",
}


def metric_data(figures, cluster_name, timestamp=None):
    """The MetricData of one PutMetricData call (BusyThreads/Threads are for the log only)."""
    data = []
    for name, unit in UNITS.items():
        if name not in figures:
            continue
        datum = {
            "MetricName": name,
            "Dimensions": [{"Name": "ClusterName", "Value": cluster_name}],
            "Value": float(figures[name]),
            "Unit": unit,
        }
        if timestamp is not None:
            datum["Timestamp"] = timestamp
        data.append(datum)
    return data


def _get(url, context, timeout):
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PublisherError(
            "Could not read %s from the scheduler's dashboard (%s). Check that dask-scheduler.service runs "
            "and that dashboard_url (scheme, address, port, CA) matches the scheduler." % (url, reason)
        ) from exc


def read_scheduler(dashboard_url, ca_file=None, timeout=10.0):
    """``(identity, task_counts)`` read from the scheduler's dashboard at ``dashboard_url``."""
    base = dashboard_url.rstrip("/")
    context = ssl.create_default_context(cafile=ca_file) if base.startswith("https:") else None
    if context is not None:
        # The certificate comes from the cluster's own CA, which is what is checked;
        # it names the host's addresses, but the dashboard may be reached by another name.
        context.check_hostname = False
    try:
        identity = json.loads(_get(base + "/json/identity.json", context, timeout))
    except ValueError as exc:
        raise PublisherError("The scheduler's /json/identity.json is not JSON (%s)." % exc) from exc
    return identity, scheduler_task_counts(_get(base + "/metrics", context, timeout))


def publish(figures, config, client=None):
    """PutMetricData of the figures; ``client`` is a boto3 CloudWatch client (made when None)."""
    if client is None:
        try:
            import boto3  # Debian's python3-boto3
        except ImportError as exc:
            raise PublisherError("boto3 is not installed for %s: install python3-boto3." % sys.executable) from exc
        client = boto3.client(
            "cloudwatch",
            region_name=config["region"],
            endpoint_url=config.get("endpoint_url") or None,
        )
    try:
        client.put_metric_data(
            Namespace=config["namespace"], MetricData=metric_data(figures, config["cluster_name"])
        )
    except Exception as exc:  # botocore's errors: no credentials, denied, endpoint unreachable
        raise PublisherError(
            "CloudWatch refused or could not be reached (%s: %s). Check the instance role "
            "(cloudwatch:PutMetricData), the region and the endpoint." % (type(exc).__name__, exc)
        ) from exc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="JSON file: dashboard_url, ca_file, namespace, "
                        "cluster_name, region, endpoint_url, certificate_file")
    parser.add_argument("--dry-run", action="store_true", help="print the figures, publish nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        with open(args.config) as f:
            config = json.load(f)
        identity, task_counts = read_scheduler(config["dashboard_url"], config.get("ca_file"))
        figures = cluster_figures(identity, task_counts)
        if config.get("certificate_file") and os.path.isfile(config["certificate_file"]):
            with open(config["certificate_file"]) as f:
                days = certificate_days_left(f.read(), time.time())
            if days is not None:
                figures["CertificateDaysLeft"] = days
        if args.dry_run:
            print(json.dumps(figures, sort_keys=True))
            return 0
        publish(figures, config)
    except PublisherError as exc:
        LOG.error("%s", exc)
        return 1
    except (OSError, ValueError, KeyError) as exc:
        LOG.error("Could not read the configuration %s: %s: %s", args.config, type(exc).__name__, exc)
        return 1
    LOG.info("Published to %s (ClusterName=%s): %s", config["namespace"], config["cluster_name"],
             ", ".join("%s=%s" % item for item in sorted(figures.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
