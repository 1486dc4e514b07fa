#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_health
short_description: Check that a Dask cluster is healthy, as its scheduler sees it
version_added: 0.1.0
description:
  - Connects to the comm port of a Dask scheduler (the port workers and clients use, usually 8786)
    and reads which workers are registered, their status and the package versions of the scheduler
    and of every worker.
  - Fails with a sentence naming what was expected and what was found when the scheduler cannot be
    reached, refuses the TLS certificate, has fewer healthy workers than O(min_workers), misses a
    worker of O(expected_workers), has a worker whose status is not in O(healthy_statuses), or runs
    mismatched package versions.
  - With O(wait=true), checks again every O(poll_interval) seconds until the cluster is healthy or
    O(wait_timeout) has passed, for use right after starting or upgrading workers.
  - Uses the scheduler's C(identity), C(versions) and C(broadcast) handlers through
    C(distributed.core.rpc); it does not register a client with the scheduler and needs none of
    the dashboard's HTTP routes.
  - Never changes anything.
author:
  - dataplatform.dask developers (@dataplatform)
options:
  timeout:
    description:
      - Seconds one check may take, connection included.
      - The check fails when the scheduler could not be connected to by then, or has not answered
        within a grace of at most one more second.
    type: float
    default: 10
  wait:
    description:
      - Check again until the cluster is healthy or O(wait_timeout) has passed, instead of failing
        at the first unhealthy answer.
      - A TLS certificate the scheduler refuses or a malformed address fails at once.
    type: bool
    default: false
  wait_timeout:
    description:
      - With O(wait=true), seconds to wait for the cluster to become healthy.
      - The last check may end up to two seconds after O(wait_timeout).
    type: float
    default: 300
  poll_interval:
    description:
      - With O(wait=true), seconds between two checks.
    type: float
    default: 2
  min_workers:
    description:
      - Minimum number of registered workers whose status is in O(healthy_statuses).
    type: int
    default: 0
  expected_workers:
    description:
      - Names of workers that must be registered (the C(--name) each worker was started with).
      - Registered workers not in this list are returned in RV(unexpected_workers) but do not make
        the cluster unhealthy.
      - When set, O(healthy_statuses), O(expected_versions) and O(require_consistent_versions)
        judge these workers only (for example one batch of a rolling upgrade); when empty, every
        registered worker.
    type: list
    elements: str
    default: []
  healthy_statuses:
    description:
      - Worker statuses that count as healthy. Every worker judged (see O(expected_workers)) must
        have one of them.
      - Dask's statuses are V(init), V(running), V(paused), V(closing_gracefully), V(closing) and
        V(closed). Add V(paused) to tolerate workers paused by memory pressure.
    type: list
    elements: str
    default: [running]
  expected_versions:
    description:
      - Package versions every worker judged (see O(expected_workers)) must have, by package name,
        for example
        V(2026.8.0) for V(dask) and V(3.11) for V(python).
      - A version matches when it is equal or when it starts with the given version followed by a
        dot, so V(3.11) matches Python V(3.11.7.final.0). Quote versions in YAML so that V(3.10)
        does not become the number 3.1.
      - Package names are those of C(distributed.versions.get_versions()), for example V(dask),
        V(distributed), V(cloudpickle), V(msgpack), V(tornado), V(toolz), V(numpy), V(pandas),
        V(lz4) and V(python).
    type: dict
    default: {}
  require_consistent_versions:
    description:
      - Require every worker judged (see O(expected_workers)) to have the scheduler's version of the
        packages Dask needs to match
        everywhere (V(dask), V(distributed), V(msgpack), V(cloudpickle), V(tornado), V(toolz)) and
        the same Python.
      - Dask itself only warns about such mismatches, but they can crash a worker while it unpacks
        messages.
      - Set to V(false) during a rolling upgrade, when old and new versions run side by side.
    type: bool
    default: true
  consistent_packages:
    description:
      - Further packages that must have the scheduler's version on every worker judged, with
        O(require_consistent_versions=true), such as the packages of the environment, for example
        V(pandas), V(pyarrow) or V(s3fs). Dask neither compares nor even reports them unless asked.
      - A package installed on the workers and missing on the scheduler (or the other way round)
        is a mismatch.
    type: list
    elements: str
    default: []
  require_drained:
    description:
      - Require the scheduler to hold no task at all (none in memory, processing, waiting, erred or
        released), that is, every client has released its results, so that a scheduler restart would then
        lose nothing. Read from the scheduler's C(get_task_prefix_states) handler, whatever the
        dashboard serves.
      - With O(wait=true), waits for it (a drained window before restarting the scheduler).
    type: bool
    default: false
  certificate_min_days:
    description:
      - On a C(tls://) address, read the TLS certificate that the scheduler and every registered
        worker present in a handshake (what the running processes loaded, which may be older than the
        files on their disks), return them in RV(certificates), and require each to stay valid for at
        least this many more days.
      - V(0) reports them and fails only on one that has expired or could not be read. Unset, they
        are not read.
    type: float
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataplatform.dask.scheduler_connection
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs and returns the same result in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The module talks to the scheduler from the host it runs on; delegate it to a host that can
    reach the scheduler's comm port (the scheduler host itself with V(tcp://127.0.0.1:8786) when
    the scheduler listens there).
  - Anyone who reaches the comm port can run code on the cluster; this is why a cluster should
    use mutual TLS, and why this module supports it.
seealso:
  - name: Dask TLS configuration
    description: How Dask uses a cluster CA and certificates.
    link: https://distributed.dask.org/en/stable/tls.html
"""

EXAMPLES = r"""
- name: Check the cluster (from the scheduler host, with the Dask venv's Python)
  dataplatform.dask.cluster_health:
    scheduler_address: tcp://127.0.0.1:8786
    min_workers: 2
  vars:
    ansible_python_interpreter: /opt/dask/venvs/current/bin/python

- name: Wait until every worker of the inventory has joined and runs
  dataplatform.dask.cluster_health:
    scheduler_address: "tls://{{ hostvars[groups['dask_schedulers'][0]].ansible_host }}:8786"
    tls_ca_file: /etc/dask/tls/ca.pem
    tls_cert: /etc/dask/tls/host.pem
    tls_key: /etc/dask/tls/host.key
    expected_workers: "{{ groups['dask_workers'] }}"
    expected_versions:
      dask: "2026.8.0"
      distributed: "2026.8.0"
    wait: true
    wait_timeout: 120
  delegate_to: "{{ groups['dask_schedulers'][0] }}"
  run_once: true
  vars:
    ansible_python_interpreter: /opt/dask/venvs/current/bin/python

- name: During a rolling upgrade, tolerate mixed versions but keep enough workers
  dataplatform.dask.cluster_health:
    scheduler_address: tcp://10.0.0.5:8786
    min_workers: 3
    require_consistent_versions: false
  register: __dask_health

- name: Check that every package of the environment is the same everywhere
  dataplatform.dask.cluster_health:
    scheduler_address: tcp://10.0.0.5:8786
    consistent_packages: [bokeh, pandas, pyarrow, s3fs]

- name: Wait until no client holds results any more (before restarting the scheduler)
  dataplatform.dask.cluster_health:
    scheduler_address: tcp://10.0.0.5:8786
    require_drained: true
    require_consistent_versions: false
    wait: true
    wait_timeout: 600

- name: Report the days left of every certificate the cluster presents, and fail below 7
  dataplatform.dask.cluster_health:
    scheduler_address: tls://10.0.0.5:8786
    tls_ca_file: /etc/dask/tls/ca.pem
    tls_cert: /etc/dask/tls/host.pem
    tls_key: /etc/dask/tls/host.key
    certificate_min_days: 7

- name: Show which workers run which dask
  ansible.builtin.debug:
    msg: "{{ __dask_health.workers | items2dict(key_name='name', value_name='versions') }}"
"""

RETURN = r"""
healthy:
  description: Whether every condition held.
  returned: always
  type: bool
  sample: true
msg:
  description: What was found; when unhealthy, the problems as sentences.
  returned: always
  type: str
  sample: "Dask cluster at tcp://10.0.0.5:8786 is healthy: 2 workers (running: 2)."
problems:
  description: Each condition that did not hold, as a sentence saying what was expected and what was found.
  returned: always
  type: list
  elements: str
  sample: ["Expected workers not registered with the scheduler: worker3 (registered: worker1, worker2)."]
scheduler:
  description: The scheduler as it describes itself; V(null) values when it could not be reached.
  returned: always
  type: dict
  contains:
    address:
      description: The scheduler's own address.
      type: str
      sample: tcp://10.0.0.5:8786
    id:
      description: The scheduler's id, new at every start.
      type: str
      sample: Scheduler-5c7f7b1e-0d1c-4f83-9a5e-3f0b0a3c9a61
    started:
      description: When the scheduler started, in seconds since the epoch.
      type: float
      sample: 1795321227.9
    versions:
      description: Package versions of the scheduler, by package name.
      type: dict
      sample: {"python": "3.11.7.final.0", "dask": "2026.8.0", "distributed": "2026.8.0"}
    task_counts:
      description: Tasks the scheduler holds, by state; V(null) unless O(require_drained=true).
      type: dict
      sample: {"memory": 40, "processing": 2, "waiting": 0, "erred": 0, "released": 0}
workers:
  description: Registered workers, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The worker's name, as a string.
      type: str
      sample: worker1
    address:
      description: The worker's comm address.
      type: str
      sample: tcp://10.0.0.6:40331
    status:
      description: The worker's status as the scheduler knows it.
      type: str
      sample: running
    nthreads:
      description: Threads of the worker.
      type: int
      sample: 4
    memory_limit:
      description: Memory limit of the worker, in bytes (0 when unlimited).
      type: int
      sample: 8589934592
    last_seen:
      description: Time of the worker's last heartbeat, in seconds since the epoch.
      type: float
      sample: 1795321230.1
    versions:
      description: Package versions of the worker, by package name; V(null) when the worker did not answer.
      type: dict
      sample: {"python": "3.11.7.final.0", "dask": "2026.8.0", "distributed": "2026.8.0"}
worker_count:
  description: Number of registered workers, whatever their status.
  returned: always
  type: int
  sample: 2
status_counts:
  description: Number of registered workers in each status.
  returned: always
  type: dict
  sample: {"running": 2}
missing_workers:
  description: Names in O(expected_workers) that are not registered.
  returned: always
  type: list
  elements: str
  sample: [worker3]
unexpected_workers:
  description: Registered workers not in O(expected_workers); empty when O(expected_workers) is empty.
  returned: always
  type: list
  elements: str
  sample: []
unhealthy_workers:
  description: Registered workers whose status is not in O(healthy_statuses).
  returned: always
  type: list
  elements: str
  sample: [worker2]
version_mismatches:
  description: Each package version that differs from what was expected.
  returned: always
  type: list
  elements: dict
  contains:
    worker:
      description: The name of the worker.
      type: str
      sample: worker2
    package:
      description: The package.
      type: str
      sample: cloudpickle
    expected:
      description: The expected version.
      type: str
      sample: 3.1.2
    found:
      description: The version found; V(null) when the package is not installed.
      type: str
      sample: 3.0.0
    reference:
      description: >-
        Where the expected version comes from: V(expected_versions), or V(scheduler) for the
        consistency required by O(require_consistent_versions).
      type: str
      sample: scheduler
certificates:
  description:
    - The TLS certificates the scheduler (first) and the workers present, with O(certificate_min_days)
      on a C(tls://) address; empty otherwise.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: V(scheduler), or the worker's name.
      type: str
      sample: worker1
    address:
      description: The comm address the certificate was read from.
      type: str
      sample: tls://10.0.0.6:40331
    not_after:
      description: When the certificate expires (UTC); V(null) when it could not be read.
      type: str
      sample: "2027-12-07T16:04:25Z"
    days_left:
      description: Days until then; V(null) when it could not be read.
      type: float
      sample: 364.9
waited:
  description: Seconds spent checking, waits included.
  returned: always
  type: float
  sample: 0.05
"""

import asyncio

from ansible_collections.dataplatform.dask.plugins.module_utils._dask_comm import (
    DaskCommError,
    connection_args,
    scheduler_module,
)
from ansible_collections.dataplatform.dask.plugins.module_utils._dask_health import (
    check_cluster,
    unreadable_result,
)


def summary(result):
    counts = ", ".join("%s: %d" % item for item in sorted(result["status_counts"].items()))
    return "%d workers (%s)" % (result["worker_count"], counts or "none")


def main():
    module = scheduler_module(
        dict(
            timeout=dict(type="float", default=10),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="float", default=300),
            poll_interval=dict(type="float", default=2),
            min_workers=dict(type="int", default=0),
            expected_workers=dict(type="list", elements="str", default=[]),
            healthy_statuses=dict(type="list", elements="str", default=["running"]),
            expected_versions=dict(type="dict", default={}),
            require_consistent_versions=dict(type="bool", default=True),
            consistent_packages=dict(type="list", elements="str", default=[]),
            require_drained=dict(type="bool", default=False),
            certificate_min_days=dict(type="float"),
        ),
        seconds_options=("timeout", "wait_timeout", "poll_interval"),
    )
    params = module.params

    address = params["scheduler_address"]
    try:
        conn_args = connection_args(address, params["tls_ca_file"], params["tls_cert"], params["tls_key"])
    except DaskCommError as exc:
        module.fail_json(msg=exc.message, changed=False, **unreadable_result(address, exc.message))

    criteria = dict(
        min_workers=params["min_workers"],
        expected_workers=params["expected_workers"],
        healthy_statuses=params["healthy_statuses"],
        expected_versions=params["expected_versions"],
        require_consistent_versions=params["require_consistent_versions"],
        consistent_packages=params["consistent_packages"],
        require_drained=params["require_drained"],
        certificate_min_days=params["certificate_min_days"],
    )
    result = asyncio.run(check_cluster(
        address,
        conn_args,
        params["timeout"],
        criteria,
        wait=params["wait"],
        wait_timeout=params["wait_timeout"],
        poll_interval=params["poll_interval"],
    ))

    if result["healthy"]:
        module.exit_json(changed=False, msg="Dask cluster at %s is healthy: %s." % (address, summary(result)), **result)
    waited = " after waiting %.0f s" % result["waited"] if params["wait"] else ""
    module.fail_json(
        changed=False,
        msg="Dask cluster at %s is not healthy%s: %s" % (address, waited, " ".join(result["problems"])),
        **result
    )


if __name__ == "__main__":
    main()
