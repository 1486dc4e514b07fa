"""The other ways of defining the mount, on one Dask host, each undone at the end:
TLS through amazon-efs-utils with an access point, removal (absent), and the mount
itself where the kernel has an NFS client."""

import json

import pytest
from conftest import MOUNT_POINT

from helpers import get_host, run_converge

HOST = "efs-dask-worker"
FS_ID = "fs-0123456789abcdef0"
ACCESS_POINT = "fsap-0123456789abcdef0"
NFS_OPTIONS = "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev"


@pytest.fixture
def host():
    return get_host(HOST)


def fstab_lines(host):
    return [
        " ".join(line.split())
        for line in host.file("/etc/fstab").content_string.splitlines()
        if line.split()[1:2] == [MOUNT_POINT]
    ]


def converge(*extra_vars):
    run = run_converge("--limit", HOST, *(arg for v in extra_vars for arg in ("-e", json.dumps(v))))
    assert run.rc == 0, run.output[-3000:]
    return run


@pytest.fixture(scope="module")
def restored():
    """Put the scenario's definition back after the tests of this file, whatever they did."""
    yield
    host = get_host(HOST)
    host.run("rm -f /sbin/mount.efs")
    converge()
    assert fstab_lines(host) == [f"efs-server:/ {MOUNT_POINT} nfs4 {NFS_OPTIONS} 0 0"]


@pytest.mark.usefixtures("restored")
def test_with_amazon_efs_utils_it_mounts_the_access_point_over_tls(host):
    # A stand-in for amazon-efs-utils' helper (never run: the mount state is present).
    host.run_test("printf '#!/bin/sh\\nexit 32\\n' >/sbin/mount.efs && chmod 0755 /sbin/mount.efs")
    converge({
        "efs_client_mount_target_address": "",
        "efs_client_file_system_id": FS_ID,
        "efs_client_region": "us-west-2",
        "efs_client_access_point_id": ACCESS_POINT,
        "efs_client_efs_utils_options": ["iam"],
    })
    options = f"{NFS_OPTIONS},tls,region=us-west-2,accesspoint={ACCESS_POINT},iam"
    assert fstab_lines(host) == [f"{FS_ID}:/ {MOUNT_POINT} efs {options} 0 0"]
    props = host.service("shared.mount").systemd_properties
    assert (props["What"], props["Type"], props["Options"]) == (f"{FS_ID}:/", "efs", options)


@pytest.mark.usefixtures("restored")
def test_absent_removes_the_definition(host):
    # Run after the TLS test: any definition of the mount point goes.
    converge({"efs_client_mount_state": "absent"})
    assert fstab_lines(host) == []
    assert host.service("shared.mount").systemd_properties["LoadState"] == "not-found"


def kernel_has_nfs():
    return "nfs4" in get_host(HOST).file("/proc/filesystems").content_string


@pytest.mark.skipif(not kernel_has_nfs(), reason="this machine's kernel has no NFS client: the mount cannot be tried")
def test_systemd_mounts_the_definition(host):
    try:
        host.run_test("systemctl start shared.mount")
        assert host.check_output(f"findmnt --noheadings --output SOURCE,FSTYPE --mountpoint {MOUNT_POINT}").split() == [
            "efs-server:/", "nfs4"]
    finally:
        host.run("systemctl stop shared.mount")
