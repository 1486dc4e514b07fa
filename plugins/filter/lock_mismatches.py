# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: lock_mismatches
short_description: What a lock of an environment lacks against its package list
version_added: 0.2.0
description:
  - Compares a lock (one C(name==version) line per distribution, as C(playbooks/wheelhouse.yml) writes
    it beside a wheelhouse archive) with the requirements the environment was asked for.
  - Returns one sentence per requirement the lock does not satisfy, so an empty list means the lock
    holds every package of the list, at the pinned version where the list pins one.
  - Names are compared as pip does (case and runs of C(-), C(_), C(.) do not matter); extras such as
    C(dask[distributed]) name the package C(dask).
author:
  - dataplatform.dask developers (@dataplatform)
options:
  _input:
    description: The lock's text. Blank lines and C(#) comments are ignored.
    type: str
    required: true
  requirements:
    description: The requirements in pip syntax, for example V(pandas==3.1.1) or V(tabulate).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a lock that lacks a package of the list
  ansible.builtin.assert:
    that: lock_text | dataplatform.dask.lock_mismatches(['pandas==3.1.1', 's3fs']) | length == 0
"""

RETURN = r"""
_value:
  description: One sentence per requirement the lock does not satisfy, in the order of O(requirements).
  type: list
  elements: str
"""

import re

from ansible.errors import AnsibleFilterError

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:==\s*([^\s,;]+)\s*)?(?:[,;<>=!~].*)?$")


def _canonical(name):
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked_versions(lock_text):
    locked = {}
    for number, line in enumerate(lock_text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        if not separator or not name.strip() or not version.strip():
            raise AnsibleFilterError(f"line {number} of the lock is not name==version: {line!r}")
        locked[_canonical(name.strip())] = version.strip()
    return locked


def lock_mismatches(lock_text, requirements):
    if not isinstance(lock_text, str):
        raise AnsibleFilterError(f"lock_mismatches expects the lock's text, got {type(lock_text).__name__}")
    locked = _locked_versions(lock_text)
    mismatches = []
    for requirement in requirements:
        match = _REQUIREMENT.match(str(requirement))
        if not match:
            raise AnsibleFilterError(f"not a requirement in pip syntax: {requirement!r}")
        name, pinned = _canonical(match.group(1)), match.group(2)
        if name not in locked:
            mismatches.append(f"{name} is not in the lock")
        elif pinned is not None and locked[name] != pinned:
            mismatches.append(f"{name} is {locked[name]} in the lock, not {pinned}")
    return mismatches


class FilterModule:
    def filters(self):
        return {"lock_mismatches": lock_mismatches}
