"""Fixtures of the EFS scenario: the NFS server standing in for EFS, the Dask hosts
that define the mount."""


import pytest

from helpers import get_host

SERVER = "efs-server"
DASK_HOSTS = ["efs-dask-scheduler", "efs-dask-worker"]
EXPORT = "/srv/efs"
MOUNT_POINT = "/shared"


@pytest.fixture(scope="session")
def server():
    return get_host(SERVER)


@pytest.fixture(scope="session", params=DASK_HOSTS)
def dask_host(request):
    return get_host(request.param)
