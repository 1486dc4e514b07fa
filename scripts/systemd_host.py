#!/usr/bin/env python
"""A systemd host as the Molecule scenarios create it (molecule/shared/systemd_host.yml),
as docker run options, for the demo and the benchmark.

    python scripts/systemd_host.py      # the options, one per line (scripts/demo.sh)
"""

from __future__ import annotations

from pathlib import Path

import yaml

SETTINGS = Path(__file__).resolve().parents[1] / "molecule" / "shared" / "systemd_host.yml"


def _settings():
    with open(SETTINGS, encoding="utf-8") as f:
        return yaml.safe_load(f)


def docker_run_options():
    """systemd without --privileged: capabilities, security options, cgroups, volumes, tmpfs."""
    host = _settings()
    return (["--cap-add=" + cap for cap in host["capabilities"]]
            + ["--security-opt=" + opt for opt in host["security_opts"]]
            + ["--cgroupns=" + host["cgroupns_mode"]]
            + ["--volume=" + volume for volume in host["volumes"]]
            + ["--tmpfs=" + path for path in host["tmpfs"]])


def command():
    return _settings()["command"].split()


if __name__ == "__main__":
    print("\n".join(docker_run_options()))
