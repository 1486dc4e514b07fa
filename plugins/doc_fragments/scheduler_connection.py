# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How the modules reach a scheduler's comm port (matches
    # _dask_comm.SCHEDULER_CONNECTION_SPEC).
    DOCUMENTATION = r"""
requirements:
  - C(distributed) (the C(dask[distributed]) package), importable by the Python that runs the module.
    The simplest is to run the module with the Python of the Dask virtualenv on a cluster host,
    for example with C(ansible_python_interpreter=/opt/dask/venvs/current/bin/python).
  - Preferably the same Dask version as the cluster.
options:
  scheduler_address:
    description:
      - Address of the scheduler's comm port, as workers use it, for example V(tcp://10.0.0.5:8786)
        or V(tls://10.0.0.5:8786).
      - Without a scheme, V(tcp://) is assumed.
    type: str
    required: true
  tls_ca_file:
    description:
      - CA certificate (PEM) of the cluster, to verify the scheduler and be accepted by it.
      - Required with a V(tls://) address, together with O(tls_cert).
    type: path
  tls_cert:
    description:
      - Client certificate (PEM) signed by the cluster's CA; may contain the key too.
    type: path
  tls_key:
    description:
      - Private key (PEM) of O(tls_cert), unless O(tls_cert) contains it.
    type: path
"""
