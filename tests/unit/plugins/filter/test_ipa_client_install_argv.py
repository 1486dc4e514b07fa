# -*- coding: utf-8 -*-
"""dataplatform.dask.ipa_client_install_argv: the exact argument list of every option set,
and every refusal (whose message must never carry a secret)."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.dataplatform.dask.plugins.filter.ipa_client_install_argv import (
    FilterModule,
    ipa_client_install_argv,
)

SECRET = "s3cret-Pa55"
HEAD = ["ipa-client-install", "--unattended", "--domain=ipa.example.com", "--realm=IPA.EXAMPLE.COM"]
OTP = {"domain": "ipa.example.com", "otp": SECRET}


def argv(**options):
    return ipa_client_install_argv(options)


def refusal(options):
    with pytest.raises(AnsibleFilterError) as error:
        ipa_client_install_argv(options)
    message = str(error.value)
    assert message.startswith("ipa_client_install_argv: ")
    assert SECRET not in message
    return message


# ---------------------------------------------------------------------------------------
# The argument lists


def test_principal_and_password():
    assert argv(domain="ipa.example.com", servers=["ipa1.ipa.example.com"], principal="enroller", password=SECRET) == HEAD + [
        "--server=ipa1.ipa.example.com",
        "--principal=enroller",
        "--password=" + SECRET,
        "--mkhomedir",
    ]


def test_one_time_password_is_a_password_without_principal():
    assert argv(**OTP) == HEAD + ["--password=" + SECRET, "--mkhomedir"]


def test_several_servers_keep_their_order():
    result = argv(servers=["ipa2.ipa.example.com", "ipa1.ipa.example.com", "ipa3.ipa.example.com"], **OTP)
    assert result == HEAD + [
        "--server=ipa2.ipa.example.com",
        "--server=ipa1.ipa.example.com",
        "--server=ipa3.ipa.example.com",
        "--password=" + SECRET,
        "--mkhomedir",
    ]


def test_no_servers_leaves_discovery_to_dns():
    assert not [arg for arg in argv(**OTP) if arg.startswith("--server")]


def test_explicit_realm():
    result = argv(domain="dask.example.com", realm="CORP.EXAMPLE.COM", otp=SECRET)
    assert result[:4] == ["ipa-client-install", "--unattended", "--domain=dask.example.com", "--realm=CORP.EXAMPLE.COM"]


@pytest.mark.parametrize("realm", [None, "", "  "])
def test_realm_defaults_to_the_domain_in_upper_case(realm):
    assert argv(domain="Ipa.Example.com", realm=realm, otp=SECRET)[2:4] == ["--domain=Ipa.Example.com", "--realm=IPA.EXAMPLE.COM"]


def test_hostname():
    result = argv(hostname="dask-worker-1.ipa.example.com", servers=["ipa1.ipa.example.com"], **OTP)
    assert result == HEAD + [
        "--server=ipa1.ipa.example.com",
        "--hostname=dask-worker-1.ipa.example.com",
        "--password=" + SECRET,
        "--mkhomedir",
    ]


def test_trailing_dots_are_dropped():
    result = argv(domain="ipa.example.com.", hostname="w1.ipa.example.com.", servers=["ipa1.ipa.example.com."], otp=SECRET)
    assert result[2:6] == ["--domain=ipa.example.com", "--realm=IPA.EXAMPLE.COM", "--server=ipa1.ipa.example.com",
                           "--hostname=w1.ipa.example.com"]


def test_mkhomedir_off():
    assert argv(mkhomedir=False, **OTP) == HEAD + ["--password=" + SECRET]


def test_mkhomedir_on_by_default_and_when_asked():
    assert argv(**OTP) == argv(mkhomedir=True, **OTP) == argv(mkhomedir=None, **OTP)


def test_no_ntp():
    assert argv(no_ntp=True, **OTP) == HEAD + ["--password=" + SECRET, "--mkhomedir", "--no-ntp"]


def test_ntp_servers():
    assert argv(ntp_servers=["169.254.169.123", "time.ipa.example.com"], **OTP) == HEAD + [
        "--password=" + SECRET,
        "--mkhomedir",
        "--ntp-server=169.254.169.123",
        "--ntp-server=time.ipa.example.com",
    ]


def test_ntp_pool():
    assert argv(ntp_pool="pool.ntp.org", **OTP) == HEAD + ["--password=" + SECRET, "--mkhomedir", "--ntp-pool=pool.ntp.org"]


def test_ntp_servers_and_pool_together():
    assert argv(ntp_servers=["169.254.169.123"], ntp_pool="pool.ntp.org", no_ntp=False, **OTP)[-2:] == [
        "--ntp-server=169.254.169.123",
        "--ntp-pool=pool.ntp.org",
    ]


def test_force_join():
    assert argv(force_join=True, **OTP) == HEAD + ["--password=" + SECRET, "--mkhomedir", "--force-join"]
    assert "--force-join" not in argv(force_join=False, **OTP)


def test_extra_args_are_appended_as_given():
    extra = ["--no-ssh", "--ca-cert-file", "/etc/pki/ipa ca.pem", "--kinit-attempts=3", "--force"]
    assert argv(extra_args=extra, **OTP) == HEAD + ["--password=" + SECRET, "--mkhomedir"] + extra


def test_extra_args_numbers_become_strings():
    assert argv(extra_args=["--kinit-attempts", 3], **OTP)[-2:] == ["--kinit-attempts", "3"]


def test_every_option_in_its_place():
    result = argv(
        domain="ipa.example.com",
        realm="IPA.EXAMPLE.COM",
        servers=["ipa1.ipa.example.com", "ipa2.ipa.example.com"],
        hostname="sched.ipa.example.com",
        principal="admin",
        password=SECRET,
        mkhomedir=True,
        ntp_servers=["169.254.169.123"],
        ntp_pool="pool.ntp.org",
        force_join=True,
        extra_args=["--no-sshd"],
    )
    assert result == HEAD + [
        "--server=ipa1.ipa.example.com",
        "--server=ipa2.ipa.example.com",
        "--hostname=sched.ipa.example.com",
        "--principal=admin",
        "--password=" + SECRET,
        "--mkhomedir",
        "--ntp-server=169.254.169.123",
        "--ntp-pool=pool.ntp.org",
        "--force-join",
        "--no-sshd",
    ]


@pytest.mark.parametrize("secret", ["-starts-with-a-dash", "has spaces and 'quotes' \"and\" $shell;chars", "a=b=c"])
def test_a_secret_stays_one_argument_whatever_it_holds(secret):
    assert argv(domain="ipa.example.com", otp=secret)[4] == "--password=" + secret
    assert argv(domain="ipa.example.com", principal="admin", password=secret)[4:6] == ["--principal=admin", "--password=" + secret]


def test_unset_options_may_be_null():
    nulls = dict.fromkeys(["realm", "servers", "hostname", "principal", "password", "mkhomedir", "no_ntp", "ntp_servers",
                           "ntp_pool", "force_join", "extra_args"])
    assert argv(**dict(nulls, **OTP)) == HEAD + ["--password=" + SECRET, "--mkhomedir"]


def test_values_around_the_names_are_trimmed_but_secrets_are_not():
    result = argv(domain=" ipa.example.com ", principal=" admin ", password=" padded ")
    assert result == HEAD + ["--principal=admin", "--password= padded ", "--mkhomedir"]


def test_the_options_are_not_changed():
    options = {"domain": "ipa.example.com", "servers": ["ipa1.ipa.example.com"], "otp": SECRET, "extra_args": ["--no-ssh"]}
    copy = {key: list(value) if isinstance(value, list) else value for key, value in options.items()}
    ipa_client_install_argv(options)
    assert options == copy


def test_the_collection_exposes_the_filter():
    assert FilterModule().filters() == {"ipa_client_install_argv": ipa_client_install_argv}


# ---------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("options", [None, "domain=ipa.example.com", ["ipa.example.com"]])
def test_refuses_anything_but_a_dictionary(options):
    assert "expects a dictionary" in refusal(options)


def test_refuses_unknown_options_and_names_the_known_ones():
    message = refusal(dict(OTP, sever=["ipa1.ipa.example.com"], ntp="x"))
    assert "unknown option(s) ntp, sever" in message
    assert "servers" in message


@pytest.mark.parametrize("domain", [None, "", "   "])
def test_refuses_a_missing_domain(domain):
    assert "'domain' is required" in refusal({"domain": domain, "otp": SECRET})


def test_refuses_options_without_a_domain_at_all():
    assert "'domain' is required" in refusal({"otp": SECRET, "servers": ["ipa1.ipa.example.com"]})


@pytest.mark.parametrize("domain", ["ipa", "ipa example.com", "-ipa.example.com", "ipa..example.com", "ipa_x.example.com",
                                    "--domain=evil.example.com"])
def test_refuses_a_malformed_domain(domain):
    assert "'domain' must be a fully qualified DNS name" in refusal({"domain": domain, "otp": SECRET})


@pytest.mark.parametrize("realm", ["IPA EXAMPLE.COM", "-IPA.EXAMPLE.COM", "IPA/EXAMPLE"])
def test_refuses_a_malformed_realm(realm):
    assert "'realm' must be a Kerberos realm name" in refusal(dict(OTP, realm=realm))


@pytest.mark.parametrize("servers", ["ipa1.ipa.example.com", "ipa1.ipa.example.com,ipa2.ipa.example.com", {"ipa1": 1}])
def test_refuses_servers_that_are_not_a_list(servers):
    assert "'servers' must be a list" in refusal(dict(OTP, servers=servers))


@pytest.mark.parametrize("item", ["", "  ", None, 5])
def test_refuses_server_items_that_are_not_names(item):
    assert "item 2 of 'servers' must be a non-empty string" in refusal(dict(OTP, servers=["ipa1.ipa.example.com", item]))


def test_refuses_a_server_that_is_not_a_dns_name():
    assert "'servers' must be a fully qualified DNS name" in refusal(dict(OTP, servers=["https://ipa1.ipa.example.com"]))


def test_refuses_a_server_listed_twice():
    assert "more than once" in refusal(dict(OTP, servers=["ipa1.ipa.example.com", "IPA1.ipa.example.com"]))


@pytest.mark.parametrize("hostname", ["worker1", "worker 1.ipa.example.com", "localhost.localdomain"])
def test_refuses_a_hostname_that_is_not_fully_qualified(hostname):
    assert "'hostname' " in refusal(dict(OTP, hostname=hostname))


def test_refuses_password_and_otp_together():
    message = refusal({"domain": "ipa.example.com", "principal": "admin", "password": SECRET, "otp": SECRET})
    assert "'password' and 'otp' are both set" in message


def test_refuses_a_principal_with_an_otp():
    message = refusal(dict(OTP, principal="admin"))
    assert "'otp' is a one-time password for the host itself and takes no 'principal'" in message
    assert "'admin'" in message


def test_refuses_a_principal_without_password():
    assert "'principal' 'admin' is set without 'password'" in refusal({"domain": "ipa.example.com", "principal": "admin"})


def test_refuses_a_password_without_principal():
    message = refusal({"domain": "ipa.example.com", "password": SECRET})
    assert "'password' is set without 'principal'" in message
    assert "'otp'" in message


@pytest.mark.parametrize("empty", [{}, {"password": ""}, {"otp": None}, {"principal": "", "password": "", "otp": ""}])
def test_refuses_an_enrollment_without_authentication(empty):
    assert "no authentication" in refusal(dict({"domain": "ipa.example.com"}, **empty))


@pytest.mark.parametrize("ntp", [{"ntp_servers": ["169.254.169.123"]}, {"ntp_pool": "pool.ntp.org"}])
def test_refuses_no_ntp_with_time_servers(ntp):
    assert "'no_ntp' is true but 'ntp_servers' or 'ntp_pool' is set" in refusal(dict(OTP, no_ntp=True, **ntp))


@pytest.mark.parametrize("key", ["mkhomedir", "no_ntp", "force_join"])
@pytest.mark.parametrize("value", ["yes", "true", 1, 0])
def test_refuses_booleans_that_are_not_booleans(key, value):
    assert "'%s' must be true or false" % key in refusal(dict(OTP, **{key: value}))


@pytest.mark.parametrize("key", ["password", "otp"])
def test_refuses_a_secret_that_is_not_a_string_without_showing_it(key):
    options = {"domain": "ipa.example.com", key: 918273645}
    if key == "password":
        options["principal"] = "admin"
    message = refusal(options)
    assert "'%s' must be a string; got a value of type int" % key in message
    assert "918273645" not in message


@pytest.mark.parametrize("key", ["domain", "hostname", "principal", "ntp_pool"])
def test_refuses_other_strings_that_are_not_strings(key):
    assert "'%s' must be a string" % key in refusal(dict({"domain": "ipa.example.com", "otp": SECRET}, **{key: ["x"]}))


def test_refuses_extra_args_that_are_not_a_list():
    assert "'extra_args' must be a list" in refusal(dict(OTP, extra_args="--no-ssh --no-sshd"))


@pytest.mark.parametrize("item", ["", None, True, {"--no-ssh": None}])
def test_refuses_extra_args_items_that_are_not_strings(item):
    assert "item 2 of 'extra_args' must be a non-empty string" in refusal(dict(OTP, extra_args=["--no-ssh", item]))


@pytest.mark.parametrize("arg, option, instead", [
    ("--domain=other.example.com", "--domain", "set 'domain' instead"),
    ("--realm", "--realm", "set 'realm' instead"),
    ("--server=ipa9.ipa.example.com", "--server", "set 'servers' instead"),
    ("--hostname=x.ipa.example.com", "--hostname", "set 'hostname' instead"),
    ("--principal=admin", "--principal", "set 'principal' instead"),
    ("--password=" + SECRET, "--password", "set 'password' or 'otp' instead"),
    ("--mkhomedir", "--mkhomedir", "set 'mkhomedir' instead"),
    ("--no-ntp", "--no-ntp", "set 'no_ntp' instead"),
    ("--ntp-server=169.254.169.123", "--ntp-server", "set 'ntp_servers' instead"),
    ("--ntp-pool=pool.ntp.org", "--ntp-pool", "set 'ntp_pool' instead"),
    ("--force-join", "--force-join", "set 'force_join' instead"),
    ("--unattended", "--unattended", "adds it itself"),
    ("--uninstall", "--uninstall", "adds it itself"),
])
def test_refuses_extra_args_the_filter_manages(arg, option, instead):
    message = refusal(dict(OTP, extra_args=["--no-ssh", arg]))
    assert "'extra_args' may not contain %s" % option in message
    assert instead in message


@pytest.mark.parametrize("arg, option", [
    ("--pass=" + SECRET, "--password"),
    ("--passw", "--password"),
    ("--uninst", "--uninstall"),
    ("--force-j", "--force-join"),
    ("--hostn=x.ipa.example.com", "--hostname"),
    ("--dom", "--domain"),
])
def test_refuses_abbreviations_of_managed_options(arg, option):
    message = refusal(dict(OTP, extra_args=[arg]))
    assert "(read as %s)" % option in message


@pytest.mark.parametrize("arg, option", [("-w" + SECRET, "-w"), ("-w", "-w"), ("-W", "-W"), ("-padmin", "-p"), ("-N", "-N"), ("-U", "-U")])
def test_refuses_short_forms_of_managed_options(arg, option):
    assert "'extra_args' may not contain %s" % option in refusal(dict(OTP, extra_args=[arg]))


def test_force_is_not_taken_for_force_join():
    assert argv(extra_args=["--force"], **OTP)[-1] == "--force"


@pytest.mark.parametrize("options", [
    {"domain": "ipa.example.com", "password": SECRET, "otp": SECRET, "principal": "admin"},
    {"domain": "ipa.example.com", "password": SECRET},
    {"domain": "bad", "otp": SECRET},
    {"domain": "ipa.example.com", "otp": SECRET, "extra_args": ["--password=" + SECRET]},
    {"domain": "ipa.example.com", "otp": SECRET, "extra_args": ["-w" + SECRET]},
    {"domain": "ipa.example.com", "otp": SECRET, "extra_args": ["--pass=" + SECRET]},
    {"domain": "ipa.example.com", "otp": SECRET, "extra_args": ["--password=" + SECRET, None]},
    {"domain": "ipa.example.com", "otp": SECRET, "no_ntp": "yes"},
    {"domain": "ipa.example.com", "otp": SECRET, "unknown": SECRET},
])
def test_no_refusal_shows_a_secret(options):
    refusal(options)  # asserts that the secret is absent
