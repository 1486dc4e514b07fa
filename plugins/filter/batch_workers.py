# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: batch_workers
short_description: How many workers a batch size restarts at once
version_added: 0.2.0
description:
  - Reads a batch size as Ansible's C(serial) keyword does, a number of hosts or a percentage of them
    (rounded down, at least one), and returns how many of O(workers) workers one batch holds.
  - Returns V(0) for a size that is neither (V(two), V(-1), V(1.5), V(0%)), so that a check such as
    C(1 <= size < workers) refuses it along with a size that leaves no worker running.
author:
  - dataplatform.dask developers (@dataplatform)
options:
  _input:
    description: The batch size, for example V(1), V(2) or V(25%).
    type: raw
    required: true
  workers:
    description: How many workers the cluster has.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Refuse a batch size that leaves no worker to take the batch's results
  ansible.builtin.assert:
    that: 1 <= dask_upgrade_batch_size | dataplatform.dask.batch_workers(groups['dask_workers'] | length) < groups['dask_workers'] | length
"""

RETURN = r"""
_value:
  description: The number of workers in one batch; V(0) when the size is not a number or a percentage.
  type: int
"""

import re


def batch_workers(size, workers):
    size = str(size).strip()
    if re.fullmatch(r"[0-9]+", size):
        return int(size)
    percent = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)%", size)
    if percent and float(percent.group(1)) > 0:
        # As Ansible's serial: a percentage of the hosts, rounded down, at least one.
        return max(int(float(percent.group(1)) * int(workers) / 100), 1)
    return 0


class FilterModule:
    def filters(self):
        return {"batch_workers": batch_workers}
