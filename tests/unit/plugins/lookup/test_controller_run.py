# -*- coding: utf-8 -*-
"""dataplatform.dask.controller_run: the ansible-playbook process behind a worker, and
whether a recorded run is still alive (the maintenance lock's owner)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys

from ansible_collections.dataplatform.dask.plugins.lookup import controller_run


def test_this_run_is_this_process_when_not_forked():
    [run] = controller_run.LookupModule().run([])
    assert run["pid"] == os.getpid() and run["host"] == socket.gethostname() and run["user"]


def _report(pipe):
    pipe.send(controller_run.run_pid())


def test_a_forked_worker_names_the_process_it_was_forked_from():
    # Ansible's workers are forks of ansible-playbook (same command line).
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_report, args=(child_end,))
    child.start()
    child.join(30)
    assert parent_end.recv() == os.getpid()


def test_alive_only_while_the_ansible_process_runs():
    process = subprocess.Popen([sys.executable, "-c", "import time; print(flush=True); time.sleep(60)",
                                "ansible-playbook", "site.yml"], stdout=subprocess.PIPE)
    try:
        process.stdout.readline()  # it runs its own command line now
        assert controller_run.LookupModule().run([process.pid]) == [True]
    finally:
        process.kill()
        process.wait()
    assert controller_run.alive(process.pid) is False
    # A process that is not Ansible (a reused process id) is not the lock's owner.
    assert controller_run.alive(os.getpid()) is False
