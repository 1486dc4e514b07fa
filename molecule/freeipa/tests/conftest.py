"""Fixtures for the freeipa scenario: the FreeIPA stand-in, the Dask hosts, the
directory's people and PAM logins."""


import pytest

from helpers import get_host

SERVER = "dask-ipa-server"
DASK_HOSTS = ["dask-ipa-1", "dask-ipa-2"]
# The directory's people (molecule/freeipa/prepare.yml).
ALICE = {"name": "alice", "uid": 1234400001, "password": "alice-password", "group": "datascientists"}
BOB = {"name": "bob", "uid": 1234400002, "password": "bob-password"}


@pytest.fixture(scope="session")
def server():
    return get_host(SERVER)


@pytest.fixture(scope="module", params=DASK_HOSTS)
def dask_host(request):
    return get_host(request.param)


def pam(host, user, password, *steps):
    """A login through PAM's `login` stack (pamtester), password on stdin."""
    return host.run(f"printf '%s\\n' '{password}' | pamtester login {user} {' '.join(steps)}")
