#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: retire_workers
short_description: Retire Dask workers through the scheduler so that their data moves to other workers
version_added: 0.1.0
description:
  - Asks a Dask scheduler to retire workers before they are stopped, for rolling upgrades and
    scale-in. Stopping a worker that was not retired loses the results it holds in memory;
    scattered data cannot even be recomputed.
  - Retiring sets each worker's status to V(closing_gracefully), so that it gets no new tasks, and
    has the scheduler's Active Memory Manager copy every key that only this worker holds to another
    worker. With the defaults the worker process keeps running, registered and holding no data of its
    own, until it is stopped (for example with C(systemctl stop)); then nothing is lost.
  - Checks the outcome instead of trusting the call. Before retiring, every name in O(names) must be
    registered (see O(missing_ok)). Afterwards, every worker must be among those Dask reports retired,
    and with O(close_workers=false) and O(remove=false) it must be in status V(closing_gracefully).
    Otherwise the module fails with a sentence naming the workers.
  - Dask gives up on a worker, and leaves it as it was, when no other worker can take its data, because
    it is the last worker, every other worker is paused or being retired too, or it holds actors. The
    module then fails and says that nothing was stopped.
  - Retiring a worker that is already V(closing_gracefully) again succeeds and moves any data it came
    to hold since (results of tasks that were running when it was first retired). When such a worker
    holds no data of its own and O(close_workers) and O(remove) are V(false), the module reports no
    change, so re-running a rolling upgrade is idempotent.
  - Uses the scheduler's C(identity), C(has_what) and C(retire_workers) handlers through
    C(distributed.core.rpc); it does not register a client with the scheduler and needs none of the
    dashboard's HTTP routes.
author:
  - dataplatform.dask developers (@dataplatform)
options:
  names:
    description:
      - Names of the workers to retire (the C(--name) each worker was started with).
      - All of them are retired at once; a worker being retired cannot receive the data of another.
    type: list
    elements: str
    required: true
  missing_ok:
    description:
      - Skip names that are not registered with the scheduler and list them in RV(not_registered),
        instead of failing before retiring anything.
      - Useful when re-running an upgrade or a scale-in after the worker was already stopped.
    type: bool
    default: false
  close_workers:
    description:
      - Have the scheduler tell the retired workers to close.
      - Under a service manager that restarts the worker (C(Restart=always)), the worker then comes
        back at once, with the same version. Keep V(false) and stop the service instead.
    type: bool
    default: false
  remove:
    description:
      - Have the scheduler remove the retired workers from its list as soon as they are retired.
      - A removed worker that still runs learns it at its next heartbeat and closes itself, with its
        nanny, so a service manager may restart it. Keep V(false) when the service is stopped next;
        the scheduler removes the worker when it disconnects.
    type: bool
    default: false
  wait_for_tasks:
    description:
      - With O(close_workers=false) and O(remove=false), wait until the retired workers have
        finished the tasks they were already running, then retire them again so those results move
        too. Afterwards they run nothing and hold nothing, and can be stopped.
      - With V(false), a task running at the time finishes on the retired worker and its result
        lives only there until the module runs again.
    type: bool
    default: true
  timeout:
    description:
      - Seconds the retirement (and the wait of O(wait_for_tasks)) may take. Moving the data of a
        worker can take a while.
      - When the scheduler has not finished by then the module fails; the scheduler goes on retiring
        the workers, which stay V(closing_gracefully). Running the module again is safe.
    type: float
    default: 300
  connect_timeout:
    description:
      - Seconds to connect to the scheduler and read its workers, before and after retiring.
    type: float
    default: 10
  check_capacity:
    description:
      - Before retiring, check that the other running workers have room for the results that only the
        workers to retire hold, and fail with nothing retired when they have not. Dask itself moves the
        data whatever room is left, which can push the recipients past their pause threshold.
      - A worker's room is O(pause_fraction) minus O(capacity_margin), times its memory limit, less the
        memory its process uses now. Workers without a memory limit have room for anything.
    type: bool
    default: true
  pause_fraction:
    description: The workers' pause threshold, as a fraction of their memory limit (C(distributed.worker.memory.pause)).
    type: float
    default: 0.8
  capacity_margin:
    description: Fraction of each recipient's memory limit kept free below its pause threshold.
    type: float
    default: 0.1
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - dataplatform.dask.scheduler_connection
attributes:
  check_mode:
    support: full
    details: In check mode the module reads the registered workers, checks O(names) and reports which
      workers it would retire, without retiring them.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The module talks to the scheduler from the host it runs on; delegate it to a host that can reach
    the scheduler's comm port (the scheduler host itself with V(tcp://127.0.0.1:8786) when the
    scheduler listens there).
  - Tasks that are running on a worker when it is retired finish there, and their results are then
    held by that worker only. Retiring the worker again right before stopping it moves them too.
  - When a retired worker is then stopped, the scheduler logs C(Remove worker ... name ...) without any
    C(lost ... task(s)) warning, but records the removal as not expected (C(expected=False) in its
    C(remove-worker) event), as for any worker that disconnects.
  - Use C(KillMode=mixed) in the worker's systemd unit so that only the nanny gets C(SIGTERM) and closes
    the worker process itself.
seealso:
  - module: dataplatform.dask.cluster_health
  - name: Dask Active Memory Manager, RetireWorker
    description: How Dask moves the data of a worker being retired.
    link: https://distributed.dask.org/en/stable/active_memory_manager.html
"""

EXAMPLES = r"""
- name: Retire a worker before upgrading it (from the scheduler host, with the Dask venv's Python)
  dataplatform.dask.retire_workers:
    scheduler_address: tcp://127.0.0.1:8786
    names:
      - "{{ inventory_hostname }}"
  delegate_to: "{{ groups['dask_schedulers'][0] }}"
  vars:
    ansible_python_interpreter: /opt/dask/venvs/current/bin/python

- name: Stop it once its data is elsewhere
  ansible.builtin.systemd_service:
    name: dask-worker
    state: stopped

- name: Scale in, with TLS; workers already gone are fine
  dataplatform.dask.retire_workers:
    scheduler_address: "tls://{{ hostvars[groups['dask_schedulers'][0]].ansible_host }}:8786"
    tls_ca_file: /etc/dask/tls/ca.pem
    tls_cert: /etc/dask/tls/host.pem
    tls_key: /etc/dask/tls/host.key
    # Worker names are the inventory hostnames unless dask_worker_name says otherwise.
    names: "{{ dask_scale_in_hosts }}"
    missing_ok: true
    timeout: 600
  delegate_to: "{{ groups['dask_schedulers'][0] }}"
  run_once: true
  register: __dask_retired
  vars:
    ansible_python_interpreter: /opt/dask/venvs/current/bin/python

- name: Show what was retired and what was already gone
  ansible.builtin.debug:
    msg: "Retired {{ __dask_retired.retired }}; not registered {{ __dask_retired.not_registered }}"
"""

RETURN = r"""
msg:
  description: What was done, or why not, as sentences.
  returned: always
  type: str
  sample: "Retired worker1 through the scheduler at tcp://10.0.0.5:8786: their data is on other workers;
    they were left running in status closing_gracefully (no new tasks, no data of their own)."
retired:
  description:
    - Names of the workers Dask retired.
    - In check mode, the workers that would be retired.
  returned: always
  type: list
  elements: str
  sample: [worker1]
retired_addresses:
  description: Comm addresses of the workers in RV(retired).
  returned: always
  type: list
  elements: str
  sample: ["tcp://10.0.0.6:40331"]
not_retired:
  description: Names of registered workers that Dask could not retire; they were left as they were.
  returned: always
  type: list
  elements: str
  sample: []
not_registered:
  description: Names in O(names) that no registered worker has.
  returned: always
  type: list
  elements: str
  sample: [worker3]
workers:
  description: The registered workers of O(names), in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The worker's name.
      type: str
      sample: worker1
    address:
      description: The worker's comm address.
      type: str
      sample: tcp://10.0.0.6:40331
    status_before:
      description: The worker's status before retiring.
      type: str
      sample: running
    status:
      description:
        - The worker's status after retiring, as the scheduler has it; V(null) when it is no longer
          registered (for example with O(remove=true)).
        - In check mode, the status before.
      type: str
      sample: closing_gracefully
    retired:
      description: Whether Dask retired this worker.
      type: bool
      sample: true
"""

import asyncio

from ansible_collections.dataplatform.dask.plugins.module_utils._dask_comm import (
    DaskCommError,
    connection_args,
    scheduler_module,
)
from ansible_collections.dataplatform.dask.plugins.module_utils._dask_retire import (
    empty_result,
    retire_workers,
)


def main():
    module = scheduler_module(
        dict(
            names=dict(type="list", elements="str", required=True),
            missing_ok=dict(type="bool", default=False),
            wait_for_tasks=dict(type="bool", default=True),
            close_workers=dict(type="bool", default=False),
            remove=dict(type="bool", default=False),
            timeout=dict(type="float", default=300),
            connect_timeout=dict(type="float", default=10),
            check_capacity=dict(type="bool", default=True),
            pause_fraction=dict(type="float", default=0.8),
            capacity_margin=dict(type="float", default=0.1),
        ),
        seconds_options=("timeout", "connect_timeout"),
    )
    params = module.params
    names = params["names"]
    if not names or any(not n.strip() for n in names):
        module.fail_json(msg="names must list the workers to retire by name, got %s." % (names,))

    address = params["scheduler_address"]
    try:
        conn_args = connection_args(address, params["tls_ca_file"], params["tls_cert"], params["tls_key"])
        ok, result = asyncio.run(retire_workers(
            address,
            conn_args,
            names,
            close_workers=params["close_workers"],
            remove=params["remove"],
            timeout=params["timeout"],
            connect_timeout=params["connect_timeout"],
            missing_ok=params["missing_ok"],
            check_mode=module.check_mode,
            wait_for_tasks=params["wait_for_tasks"],
            capacity=(params["pause_fraction"], params["capacity_margin"]) if params["check_capacity"] else None,
        ))
    except DaskCommError as exc:
        # Nothing was retired: the scheduler could not be read before.
        module.fail_json(msg="%s Nothing was retired." % exc.message, changed=False, **empty_result())

    for warning in result.pop("warnings"):
        module.warn(warning)
    if ok:
        module.exit_json(**result)
    module.fail_json(**result)


if __name__ == "__main__":
    main()
