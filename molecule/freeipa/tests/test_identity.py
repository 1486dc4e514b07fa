"""On the joined Dask hosts the directory's people resolve, log in with Kerberos and
get home directories; who may log in follows freeipa_client_allowed_groups."""

import re

from conftest import ALICE, BOB, pam


def test_users_and_groups_resolve_from_the_directory(dask_host):
    entry = dask_host.check_output(f"getent passwd {ALICE['name']}").split(":")
    assert entry[2:4] == [str(ALICE["uid"])] * 2
    assert entry[5:] == [f"/home/{ALICE['name']}", "/bin/bash"]
    assert f"({ALICE['group']})" in dask_host.check_output(f"id {ALICE['name']}")
    assert f"uid={BOB['uid']}(bob)" in dask_host.check_output("id bob")


def test_the_directory_refuses_anonymous_reads(server):
    # So the hosts' lookups above prove their GSSAPI binds with the host keytab.
    anonymous = server.run(
        "LDAPTLS_CACERT=/etc/ldap/ca.crt ldapsearch -LLL -x -ZZ -H ldap://ipa1.ipa.test "
        "-b cn=users,cn=accounts,dc=ipa,dc=test '(uid=alice)' uid"
    )
    assert "uid: alice" not in anonymous.stdout


def test_login_with_the_kerberos_password_creates_the_home_directory(dask_host):
    home = f"/home/{ALICE['name']}"
    dask_host.check_output(f"rm -rf {home} /tmp/krb5cc_{ALICE['uid']}_*")

    login = pam(dask_host, ALICE["name"], ALICE["password"], "authenticate", "acct_mgmt", "open_session")
    assert login.rc == 0, login.stderr

    assert dask_host.file(home).is_directory
    assert dask_host.file(home).uid == ALICE["uid"]
    # SSSD's Kerberos provider got the user a ticket from the KDC and left it to them.
    cache = dask_host.check_output(f"ls /tmp/krb5cc_{ALICE['uid']}_*").split()[0]
    assert dask_host.file(cache).uid == ALICE["uid"]
    tickets = dask_host.check_output(f"klist -c {cache}")
    assert "Default principal: alice@IPA.TEST" in tickets
    assert "krbtgt/IPA.TEST@IPA.TEST" in tickets


def test_a_wrong_password_is_refused(dask_host):
    assert pam(dask_host, ALICE["name"], "not-the-password", "authenticate").rc != 0


def test_only_the_allowed_group_may_log_in(dask_host):
    # bob's password is right (he authenticates) but he is not in datascientists.
    assert pam(dask_host, BOB["name"], BOB["password"], "authenticate").rc == 0
    denied = pam(dask_host, BOB["name"], BOB["password"], "authenticate", "acct_mgmt")
    assert denied.rc != 0
    assert "Permission denied" in denied.stderr


def test_kinit_works_with_the_role_kerberos_configuration(dask_host):
    tickets = dask_host.run(
        f"printf '%s\\n' '{ALICE['password']}' | KRB5CCNAME=FILE:/tmp/kinit-test sh -c 'kinit {ALICE['name']} >/dev/null && klist'"
    )
    assert tickets.rc == 0, tickets.stderr
    assert "alice@IPA.TEST" in tickets.stdout


def test_the_host_secrets_are_root_only(dask_host):
    for path in ["/etc/krb5.keytab", "/etc/sssd/sssd.conf", "/etc/sssd/conf.d/50-dataplatform-dask.conf"]:
        secret = dask_host.file(path)
        assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600), path
    hostname = dask_host.check_output("hostname")
    keys = dask_host.check_output("klist -k /etc/krb5.keytab")
    assert re.search(rf"host/{re.escape(hostname)}@IPA\.TEST", keys), keys
