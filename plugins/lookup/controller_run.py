# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: controller_run
short_description: This Ansible run, or whether another one is still alive, on the controller
version_added: 0.2.0
description:
  - Without terms, returns who runs this C(ansible-playbook) and where, to record as the owner of the
    collection's maintenance lock; C(pid) is the process id of the C(ansible-playbook) process itself.
    Ansible evaluates lookups in worker processes forked from it (same command line); the lookup
    walks up the process tree to the first process with another command line.
  - With a process id as term, returns whether that process still runs an Ansible command on this
    controller, read from C(/proc). Where there is no C(/proc) (not Linux) the answer is V(true), so
    that a lock is never taken over there without C(dask_common_lock_break).
author:
  - dataplatform.dask developers (@dataplatform)
options:
  _terms:
    description: Process ids to check, instead of describing this run.
    type: list
    elements: int
    required: false
"""

EXAMPLES = r"""
- name: Record this run as the owner
  ansible.builtin.copy:
    content: "{{ lookup('dataplatform.dask.controller_run') | to_json }}"
    dest: /run/lock/example.lock
    mode: "0600"

- name: Tell whether the run that wrote a lock is still alive
  ansible.builtin.debug:
    msg: "{{ lookup('dataplatform.dask.controller_run', 12345) }}"
"""

RETURN = r"""
_raw:
  description:
    - Without terms, one dict with C(user), C(host) (the controller's host name) and C(pid).
    - With terms, one boolean per process id.
  type: list
  elements: raw
"""

import getpass
import os
import socket

from ansible.plugins.lookup import LookupBase


def _cmdline(pid):
    """The command line of a process, or None when it cannot be read."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            return cmdline.read()
    except (OSError, ValueError):
        return None


def run_pid(pid=None):
    """The first process above ``pid`` (this process by default) whose command line differs
    from its child's: the process that forked the workers."""
    pid = pid or os.getpid()
    own = _cmdline(pid)
    if own is None:
        return os.getppid()
    while True:
        try:
            with open("/proc/%d/stat" % pid) as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return pid
        if parent <= 1 or _cmdline(parent) != own:
            return pid
        pid = parent


def alive(pid):
    """Whether ``pid`` is a running Ansible command on this machine (True when unknowable)."""
    if not os.path.isdir("/proc/self"):
        return True
    cmdline = _cmdline(int(pid))
    return cmdline is not None and b"ansible" in cmdline


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if terms:
            return [alive(pid) for pid in terms]
        return [{"user": getpass.getuser(), "host": socket.gethostname(), "pid": run_pid()}]
