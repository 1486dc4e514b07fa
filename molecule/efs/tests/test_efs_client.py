"""The EFS mount as far as this machine allows: the persistent definition that
systemd would mount at boot, and the shared directories on the file system,
reached through NFS from the Dask hosts (user-space client: no kernel NFS here)."""

import shlex
import uuid

import pytest
from conftest import EXPORT, MOUNT_POINT, SERVER

from helpers import flat, run_converge

NFS_OPTIONS = "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev"
FSTAB_LINE = f"{SERVER}:/ {MOUNT_POINT} nfs4 {NFS_OPTIONS} 0 0"
DASK_IDS = (990, 990)


def nfs_url(path):
    # libnfs takes everything before the last "/" as the export: "//name" is a file at the root.
    return f"nfs://{SERVER}/{path if '/' in path or not path else '/' + path}?version=4"


def test_nfs_client_is_installed(dask_host):
    assert dask_host.package("nfs-common").is_installed
    assert dask_host.exists("mount.nfs4")


def test_fstab_defines_the_mount_with_the_recommended_options(dask_host):
    lines = [
        " ".join(line.split())
        for line in dask_host.file("/etc/fstab").content_string.splitlines()
        if line.split()[1:2] == [MOUNT_POINT]
    ]
    assert lines == [FSTAB_LINE]


def test_fstab_passes_findmnt_verify(dask_host):
    run = dask_host.run("findmnt --verify --verbose --tab-file /etc/fstab")
    assert run.rc == 0, run.stdout + run.stderr
    assert f"do not check {SERVER}:/ source (pseudo/net)" in run.stdout


def test_systemd_mounts_it_at_boot_after_the_network(dask_host):
    unit = dask_host.check_output(f"systemd-escape --path --suffix=mount {MOUNT_POINT}")
    assert unit == "shared.mount"
    props = dask_host.service(unit).systemd_properties
    assert props["LoadState"] == "loaded"
    assert props["FragmentPath"] == f"/run/systemd/generator/{unit}"
    assert props["SourcePath"] == "/etc/fstab"
    assert props["What"] == f"{SERVER}:/"
    assert props["Where"] == MOUNT_POINT
    assert props["Type"] == "nfs4"
    assert props["Options"] == NFS_OPTIONS
    # remote-fs.target pulls it in at boot; _netdev orders it after the network.
    assert unit in dask_host.check_output("systemctl list-dependencies --plain remote-fs.target")
    assert "network-online.target" in props["After"].split()
    # efs_client_mount_state=present: defined, not mounted now.
    assert props["ActiveState"] == "inactive"
    assert dask_host.run(f"findmnt --mountpoint {MOUNT_POINT}").rc == 1
    assert dask_host.run(f"systemd-analyze verify --man=no /run/systemd/generator/{unit}").rc == 0


def test_an_unmounted_mount_point_takes_no_dask_writes(dask_host):
    # The directories wait for the file system: a job on a host without it fails
    # instead of writing results to the local disk, where no other host sees them.
    mount_point = dask_host.file(MOUNT_POINT)
    assert mount_point.is_directory
    assert (mount_point.user, mount_point.group, mount_point.mode) == ("root", "root", 0o755)
    assert mount_point.listdir() == []
    assert dask_host.run(f"sudo -u dask touch {MOUNT_POINT}/results").rc != 0


@pytest.mark.parametrize(
    "path, owner, group, mode",
    [("data", "root", "dask", 0o755), ("results", "dask", "dask", 0o2775), ("scratch", "dask", "dask", 0o2770)],
)
def test_shared_directories_on_the_file_system(server, path, owner, group, mode):
    directory = server.file(f"{EXPORT}/{path}")
    assert directory.is_directory
    assert (directory.user, directory.group, directory.mode) == (owner, group, mode)
    assert (directory.uid, directory.gid) == ((0, 990) if owner == "root" else DASK_IDS)


def test_the_share_is_reachable_from_the_dask_hosts(dask_host):
    listing = dask_host.check_output(f"nfs-ls {shlex.quote(nfs_url(''))}")
    assert {line.split()[-1] for line in listing.splitlines()} >= {"data", "results", "scratch"}


@pytest.mark.parametrize("path", ["results", "scratch"])
def test_dask_writes_results_through_nfs_as_itself(dask_host, server, path):
    name = f"{dask_host.backend.name}-{uuid.uuid4().hex}.txt"
    dask_host.run_test(f"echo computed >/tmp/{name} && chmod 0644 /tmp/{name}")
    run = dask_host.run(f"sudo -u dask nfs-cp /tmp/{name} {shlex.quote(nfs_url(f'{path}/{name}'))}")
    assert run.rc == 0, run.stdout + run.stderr
    written = server.file(f"{EXPORT}/{path}/{name}")
    assert written.content_string == "computed\n"
    dask = dask_host.user("dask")
    assert (written.uid, written.gid) == (dask.uid, dask.gid) == DASK_IDS
    # And it reads back through NFS.
    assert dask_host.check_output(f"nfs-cat {shlex.quote(nfs_url(f'{path}/{name}'))}") == "computed"


@pytest.mark.parametrize("path", ["data", ""])
def test_dask_cannot_write_data_or_the_root_through_nfs(dask_host, server, path):
    name = f"{dask_host.backend.name}-{uuid.uuid4().hex}.txt"
    dask_host.run_test(f"echo nope >/tmp/{name} && chmod 0644 /tmp/{name}")
    target = f"{path}/{name}" if path else name
    run = dask_host.run(f"sudo -u dask nfs-cp /tmp/{name} {shlex.quote(nfs_url(target))}")
    assert run.rc != 0
    assert not server.file(f"{EXPORT}/{target}").exists
    # Root can (no root squash, like EFS without a policy): the refusal is the mode's.
    root = dask_host.run(f"nfs-cp /tmp/{name} {shlex.quote(nfs_url(target))}")
    assert root.rc == 0, root.stdout + root.stderr
    assert server.file(f"{EXPORT}/{target}").uid == 0
    server.run_test(f"rm -f {EXPORT}/{target}")


def test_check_mode_on_the_converged_hosts_changes_nothing():
    run = run_converge("--check", "--diff")
    assert run.rc == 0, run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]
    assert "the shared directories are created by the first run with the file system mounted" in flat(run.output)
