# -*- coding: utf-8 -*-
"""The modules' EXAMPLES, as ``ansible-doc`` shows them, run against real in-process clusters.

Each example task of a module is templated by Ansible with an inventory shaped like the
collection's (groups dask_schedulers and dask_workers, workers named after their hosts);
the paths it names are checked against the ones the roles derive (the venv's Python, the
host's TLS files); then it runs with the test cluster's address and TLS files in place of
the host's, in the order written, as a playbook would run them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

pytest.importorskip("distributed", reason="these tests run real Dask servers: install dask[distributed] (requirements.txt)")

from ansible_collections.dataplatform.dask.plugins.modules import cluster_health, retire_workers  # noqa: E402

ROLE = Path(__file__).resolve().parents[4] / "roles" / "dask_common"
WORKERS = ["w1", "w2", "w3"]

# What the examples' templates read: a scheduler host and three workers, and scale.yml's input.
INVENTORY = {
    "groups": {"dask_schedulers": ["scheduler-1"], "dask_workers": WORKERS},
    "hostvars": {"scheduler-1": {"ansible_host": "10.0.0.5"}},
    "inventory_hostname": "w1",
    "dask_scale_in_hosts": ["w3", "w9"],
}


def trusted(value):
    """``value`` with every string marked as a template, as Ansible marks a playbook's."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(item) for item in value]
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    return value


def template(value, variables):
    return Templar(loader=DataLoader(), variables=trusted(variables)).template(trusted(value))


def role_fact(name):
    """A variable of the dask_common role, templated from its defaults and vars."""
    variables = {}
    for part in ("defaults", "vars"):
        variables.update(yaml.safe_load((ROLE / part / "main.yml").read_text()))
    return template("{{ %s }}" % name, variables)


def example_tasks(module):
    """(args, vars) of each task of the module's EXAMPLES that calls the module."""
    name = "dataplatform.dask." + module.__name__.rsplit(".", 1)[-1]
    tasks = [task for task in yaml.safe_load(module.EXAMPLES) if name in task]
    assert tasks, "%s has no example" % name
    return [(template(task[name], INVENTORY), task.get("vars", {})) for task in tasks]


def run(module, capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    result = json.loads(capsys.readouterr().out)
    assert not exit_info.value.code, result["msg"]
    return result


def on_test_clusters(args, vars_, plain, tls, tls_files):
    """The example's arguments pointed at the test cluster of its scheme, after checking that
    what it names on the host is what the roles install there."""
    if "ansible_python_interpreter" in vars_:
        assert vars_["ansible_python_interpreter"] == role_fact("_dask_common_module_python")
    tls_options = {"tls_ca_file": "ca", "tls_cert": "node_cert", "tls_key": "node_key"}
    for option, fact in zip(tls_options, ("_dask_common_tls_ca_file", "_dask_common_tls_cert", "_dask_common_tls_key")):
        if option in args:
            assert args[option] == role_fact(fact)
    if args["scheduler_address"].startswith("tls://"):
        assert args["scheduler_address"] == "tls://10.0.0.5:8786"
        return dict(args, scheduler_address=tls.address, **{o: tls_files[f] for o, f in tls_options.items()})
    return dict(args, scheduler_address=plain.address)


@pytest.fixture
def clusters(make_cluster, month_tls_security):
    """A plain and a TLS cluster (certificates valid for 30 days), three workers each."""
    plain, tls = make_cluster(), make_cluster(security=month_tls_security)
    for cluster in (plain, tls):
        for name in WORKERS:
            cluster.add_worker(name)
    return plain, tls


def test_cluster_health_examples(clusters, month_tls_files, capsys):
    for args, vars_ in example_tasks(cluster_health):
        if "expected_versions" in args:
            assert args["expected_versions"]["dask"] == role_fact("dask_common_version")
        result = run(cluster_health, capsys, on_test_clusters(args, vars_, *clusters, month_tls_files))
        assert len(result["workers"]) == len(WORKERS)


def test_retire_workers_examples(clusters, month_tls_files, capsys):
    retired = []
    for args, vars_ in example_tasks(retire_workers):
        result = run(retire_workers, capsys, on_test_clusters(args, vars_, *clusters, month_tls_files))
        retired += result["retired"]
    # The first example retires this host's worker (w1), the second scale.yml's choice, of
    # which w9 is gone already.
    assert retired == ["w1", "w3"]
