"""Bad input is refused with a message naming the fix, before anything changes
(runs against the converged hosts)."""

import concurrent.futures
import json

import pytest
from conftest import DASK_HOSTS

from helpers import flat, get_host, run_converge

DASK_HOSTS_ONLY = ["--limit", "dask_schedulers:dask_workers"]
BAD_INPUTS = {
    "no file system": (
        {"efs_client_mount_target_address": ""},
        "No file system to mount: set efs_client_file_system_id (fs-...) and efs_client_region, "
        "or efs_client_mount_target_address",
    ),
    "both an id and an address": (
        {"efs_client_file_system_id": "fs-0123456789abcdef0", "efs_client_region": "us-west-2"},
        "Both efs_client_file_system_id (fs-0123456789abcdef0) and efs_client_mount_target_address (efs-server) "
        "are set; keep one of them.",
    ),
    "malformed file system id": (
        {"efs_client_file_system_id": "fs-xyz", "efs_client_region": "us-west-2", "efs_client_mount_target_address": ""},
        "efs_client_file_system_id must be an EFS file system id such as fs-0123456789abcdef0 (got 'fs-xyz')",
    ),
    "access point without TLS": (
        {"efs_client_access_point_id": "fsap-0123456789abcdef0"},
        "access points are mounted only by amazon-efs-utils with TLS, which needs mount.efs on the host "
        "(not installed: set efs_client_efs_utils_package) and efs_client_file_system_id with "
        "efs_client_region (not set).",
    ),
    "TLS required without amazon-efs-utils": (
        {"efs_client_tls": "required"},
        "efs_client_tls=required, but amazon-efs-utils is not installed (no /sbin/mount.efs)",
    ),
    "a Dask user that does not exist": (
        {"efs_client_dask_user": "nobody-here"},
        "Run dataplatform.dask.dask_common first (it creates them)",
    ),
    "a mount state the role does not know": ({"efs_client_mount_state": "unmounted"}, "efs_client_mount_state"),
}


@pytest.fixture(scope="module")
def refusals():
    """The run of each bad input, all at once: none changes anything, so they can share the hosts."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runs = pool.map(lambda case: run_converge(*DASK_HOSTS_ONLY, "-e", json.dumps(case[0])), BAD_INPUTS.values())
        return dict(zip(BAD_INPUTS, runs))


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_changes_nothing(refusals, case):
    message = BAD_INPUTS[case][1]
    run = refusals[case]
    assert run.rc != 0, run.output[-3000:]
    assert message in flat(run.output), run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]


@pytest.fixture
def users_with_different_uids():
    """A user 'efs-mismatch' with uid 2001 on one Dask host and 2002 on the other."""
    hosts = [get_host(name) for name in DASK_HOSTS]
    for uid, host in enumerate(hosts, start=2001):
        host.run_test(f"useradd --no-create-home --uid {uid} --gid dask efs-mismatch")
    yield
    for host in hosts:
        host.run_test("userdel efs-mismatch")


@pytest.mark.usefixtures("users_with_different_uids")
def test_a_dask_user_with_different_uids_is_refused():
    run = run_converge(*DASK_HOSTS_ONLY, "-e", "efs_client_dask_user=efs-mismatch")
    assert run.rc != 0, run.output[-3000:]
    assert (
        'has different uid:gid on the hosts of this play: {"efs-dask-scheduler": "2001:990", '
        '"efs-dask-worker": "2002:990"}' in flat(run.output)
    ), run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]
