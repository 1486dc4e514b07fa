"""Leaving the domain (freeipa_client_state: absent) undoes the sssd join, once, and
a host that left can join again (runs last)."""

from conftest import ALICE
from helpers import get_host, run_converge

LEAVING = "dask-ipa-2"


def test_a_host_leaves_and_joins_again():
    dask_host = get_host(LEAVING)
    left = run_converge("--limit", LEAVING, "-e", "freeipa_client_state=absent")
    assert left.rc == 0, left.output[-3000:]
    assert dask_host.run(f"getent passwd {ALICE['name']}").rc != 0
    for path in ["/etc/krb5.keytab", "/etc/sssd/sssd.conf", "/etc/sssd/conf.d/50-dataplatform-dask.conf"]:
        assert not dask_host.file(path).exists, path
    # No cached identity or password outlives the join.
    assert dask_host.check_output("find /var/lib/sss/db /var/lib/sss/mc -type f") == ""

    again = run_converge("--limit", LEAVING, "-e", "freeipa_client_state=absent")
    assert again.rc == 0 and again.changed == {LEAVING: 0}, again.output[-3000:]

    joined = run_converge("--limit", LEAVING)
    assert joined.rc == 0, joined.output[-3000:]
    assert dask_host.run(f"getent passwd {ALICE['name']}").rc == 0
