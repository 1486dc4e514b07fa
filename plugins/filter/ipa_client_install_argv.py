# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: ipa_client_install_argv
short_description: The argument vector of an unattended C(ipa-client-install) enrollment
version_added: 0.1.0
description:
  - Turns a dictionary of enrollment options into the exact argument list of
    C(ipa-client-install --unattended), for C(ansible.builtin.command) with C(argv), so that no
    value is ever split or interpreted by a shell.
  - Checks the options first and fails with a sentence saying what is wrong and what to do, naming
    options but never the value of a secret.
  - Authentication is either O(_input.principal) with O(_input.password) (an account allowed to
    enroll hosts), or O(_input.otp), the host's one-time password, which C(ipa-client-install)
    receives as C(--password) without C(--principal).
  - Every value is passed in the C(--option=value) form, so a value that starts with a dash is not
    taken for an option.
author:
  - dataplatform.dask developers (@dataplatform)
options:
  _input:
    description: The enrollment options. Keys not listed here are refused; V(null) means not set.
    type: dict
    required: true
    suboptions:
      domain:
        description: The FreeIPA DNS domain (C(--domain)), for example V(ipa.example.com).
        type: str
        required: true
      realm:
        description: The Kerberos realm (C(--realm)). Empty or missing takes O(_input.domain) in upper case.
        type: str
      servers:
        description:
          - FreeIPA servers to enroll against, one C(--server) each, in order.
          - Empty or missing lets C(ipa-client-install) find them through DNS SRV records.
        type: list
        elements: str
      hostname:
        description: The host's fully qualified name in the domain (C(--hostname)); missing keeps the system's.
        type: str
      principal:
        description: An account allowed to enroll hosts (C(--principal)); requires O(_input.password).
        type: str
      password:
        description: The password of O(_input.principal) (C(--password)).
        type: str
      otp:
        description:
          - The host's one-time enrollment password (C(--password) without C(--principal)), as made by
            C(ipa host-add --random) or C(ipa host-mod --random).
          - Excludes O(_input.principal) and O(_input.password).
        type: str
      mkhomedir:
        description: Create home directories at first login (C(--mkhomedir)).
        type: bool
        default: true
      no_ntp:
        description: Leave time synchronisation alone (C(--no-ntp)). Excludes O(_input.ntp_servers) and O(_input.ntp_pool).
        type: bool
        default: false
      ntp_servers:
        description: Time servers for chrony, one C(--ntp-server) each.
        type: list
        elements: str
      ntp_pool:
        description: A time server pool for chrony (C(--ntp-pool)).
        type: str
      force_join:
        description: Join even if the host entry already exists on the server (C(--force-join)).
        type: bool
        default: false
      extra_args:
        description:
          - Further arguments, appended as given (for example V([--no-ssh, --ca-cert-file=/etc/ipa-ca.pem])).
          - Options this filter manages (C(--domain), C(--password), C(--uninstall), ...) are refused here,
            also abbreviated; set the matching key instead.
        type: list
        elements: str
notes:
  - C(ipa-client-install) takes the password on its command line, so it is visible in the process list of
    the host while the enrollment runs. Prefer O(_input.otp), which is worthless once used.
  - Keep every task that handles the result under C(no_log=true); the argument list contains the secret.
seealso:
  - name: ipa-client-install(1)
    description: The options of the FreeIPA client installer.
    link: https://freeipa.readthedocs.io/en/latest/
"""

EXAMPLES = r"""
- name: Enroll the host with a one-time password
  ansible.builtin.command:
    argv: "{{ options | dataplatform.dask.ipa_client_install_argv }}"
    creates: /etc/ipa/default.conf
  vars:
    options:
      domain: ipa.example.com
      servers: [ipa1.ipa.example.com, ipa2.ipa.example.com]
      hostname: "{{ inventory_hostname }}.ipa.example.com"
      otp: "{{ vault_ipa_otp }}"
      ntp_servers: [169.254.169.123]
  no_log: true

# ['ipa-client-install', '--unattended', '--domain=ipa.example.com', '--realm=IPA.EXAMPLE.COM',
#  '--server=ipa1.ipa.example.com', '--principal=enroller', '--password=...', '--mkhomedir', '--no-ntp']
- name: The argument list for an enrollment account, without time synchronisation
  ansible.builtin.set_fact:
    __argv: "{{ {'domain': 'ipa.example.com', 'servers': ['ipa1.ipa.example.com'], 'principal': 'enroller',
                 'password': vault_enroller_password, 'no_ntp': true} | dataplatform.dask.ipa_client_install_argv }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The command and its arguments, beginning with V(ipa-client-install) and V(--unattended).
  type: list
  elements: str
"""

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

COMMAND = "ipa-client-install"

_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# At least two labels: FreeIPA does not support single-label domains, and a host name
# must be fully qualified.
_DNS_NAME = re.compile(r"^(?=.{1,253}$)%s(?:\.%s)+\.?$" % (_DNS_LABEL, _DNS_LABEL))
_REALM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_STRINGS = ("domain", "realm", "hostname", "principal", "password", "otp", "ntp_pool")
_LISTS = ("servers", "ntp_servers", "extra_args")
_BOOLEANS = {"mkhomedir": True, "no_ntp": False, "force_join": False}
_SECRETS = ("password", "otp")
OPTIONS = frozenset(_STRINGS + _LISTS + tuple(_BOOLEANS))

# Options the filter writes itself; extra_args may not repeat, contradict or abbreviate them.
_MANAGED_LONG = {
    "--domain": "'domain'",
    "--realm": "'realm'",
    "--server": "'servers'",
    "--hostname": "'hostname'",
    "--principal": "'principal'",
    "--password": "'password' or 'otp'",
    "--mkhomedir": "'mkhomedir'",
    "--no-ntp": "'no_ntp'",
    "--ntp-server": "'ntp_servers'",
    "--ntp-pool": "'ntp_pool'",
    "--force-join": "'force_join'",
    "--unattended": None,
    "--uninstall": None,
}
_MANAGED_SHORT = {"-p": "'principal'", "-w": "'password' or 'otp'", "-W": "'password' or 'otp'", "-N": "'no_ntp'", "-U": None}
# Real ipa-client-install options that are also prefixes of a managed one.
_UNMANAGED_PREFIXES = frozenset(["--force"])


def _fail(message):
    raise AnsibleFilterError("ipa_client_install_argv: " + message)


def _describe(value):
    return "%r (%s)" % (value, type(value).__name__)


def _string(options, key):
    value = options.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        shown = "a value of type %s" % type(value).__name__ if key in _SECRETS else _describe(value)
        _fail("'%s' must be a string; got %s. Quote the value in YAML." % (key, shown))
    return value.strip() if key not in _SECRETS else value


def _boolean(options, key):
    value = options.get(key)
    if value is None:
        return _BOOLEANS[key]
    if not isinstance(value, bool):
        _fail("'%s' must be true or false; got %s. Pass it through the bool filter." % (key, _describe(value)))
    return value


def _list(options, key):
    value = options.get(key)
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        _fail("'%s' must be a list; got %s. Write it as a YAML list, e.g. [%s]." % (key, _describe(value), "a, b"))
    items = []
    for index, item in enumerate(value):
        if key == "extra_args" and isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            # extra_args may hold a secret next to the bad item: show only the bad item.
            _fail("item %d of '%s' must be a non-empty string; got %s." % (index + 1, key, _describe(item)))
        items.append(item if key == "extra_args" else item.strip())
    return items


def _dns_name(key, value):
    if not _DNS_NAME.match(value):
        _fail(
            "'%s' must be a fully qualified DNS name such as ipa.example.com (letters, digits, hyphens, at least "
            "two labels); got %r." % (key, value)
        )
    if value.rstrip(".").lower() in ("localhost.localdomain", "localhost.localdomain6"):
        _fail("'%s' may not be %r; give the host's own fully qualified name in the FreeIPA domain." % (key, value))
    return value.rstrip(".")


def _check_extra_args(extra_args):
    for arg in extra_args:
        if arg.startswith("--"):
            # ipa-client-install accepts unambiguous abbreviations of long options.
            name = arg.split("=", 1)[0]
            if name in _UNMANAGED_PREFIXES or len(name) <= 2:
                continue
            for option, key in _MANAGED_LONG.items():
                if option.startswith(name):
                    _refuse_extra(name, option, key)
        elif arg.startswith("-"):
            for option, key in _MANAGED_SHORT.items():
                if arg.startswith(option):
                    _refuse_extra(option, option, key)


def _refuse_extra(given, option, key):
    # Only the option's name is shown: its value may be a secret (--password=...).
    what = given if given == option else "%s (read as %s)" % (given, option)
    if key is None:
        _fail("'extra_args' may not contain %s: the filter adds it itself where it belongs." % what)
    _fail("'extra_args' may not contain %s: set %s instead." % (what, key))


def ipa_client_install_argv(options):
    """Return the argv of ``ipa-client-install --unattended`` for ``options`` (see DOCUMENTATION)."""
    if not isinstance(options, Mapping):
        _fail("expects a dictionary of options (domain, servers, principal, ...); got %s." % type(options).__name__)
    unknown = sorted(str(key) for key in options if key not in OPTIONS)
    if unknown:
        _fail("unknown option(s) %s. Known options: %s." % (", ".join(unknown), ", ".join(sorted(OPTIONS))))

    strings = {key: _string(options, key) for key in _STRINGS}
    lists = {key: _list(options, key) for key in _LISTS}
    flags = {key: _boolean(options, key) for key in _BOOLEANS}

    if not strings["domain"]:
        _fail("'domain' is required: the FreeIPA DNS domain the host joins, e.g. ipa.example.com.")
    domain = _dns_name("domain", strings["domain"])
    realm = strings["realm"] or domain.upper()
    if not _REALM.match(realm):
        _fail("'realm' must be a Kerberos realm name such as IPA.EXAMPLE.COM; got %r." % realm)
    servers = [_dns_name("servers", server) for server in lists["servers"]]
    if len(set(s.lower() for s in servers)) != len(servers):
        _fail("'servers' lists a server more than once: %s." % ", ".join(servers))
    hostname = _dns_name("hostname", strings["hostname"]) if strings["hostname"] else ""

    principal, password, otp = strings["principal"], strings["password"], strings["otp"]
    if otp and password:
        _fail(
            "'password' and 'otp' are both set. Use either an enrollment account ('principal' and 'password') "
            "or the host's one-time password ('otp'), not both."
        )
    if otp and principal:
        _fail(
            "'otp' is a one-time password for the host itself and takes no 'principal' (got principal %r). "
            "Remove 'principal', or use 'password' with it instead of 'otp'." % principal
        )
    if principal and not password:
        _fail("'principal' %r is set without 'password'. Set its 'password' (from the vault)." % principal)
    if password and not principal:
        _fail(
            "'password' is set without 'principal'. Name the enrollment account in 'principal', or pass a "
            "one-time password as 'otp'."
        )
    if not (password or otp):
        _fail(
            "no authentication: set 'principal' and 'password' (an account allowed to enroll hosts) or 'otp' "
            "(the host's one-time password from 'ipa host-add --random')."
        )

    if flags["no_ntp"] and (lists["ntp_servers"] or strings["ntp_pool"]):
        _fail("'no_ntp' is true but 'ntp_servers' or 'ntp_pool' is set. Keep either one: no time sync, or these servers.")
    _check_extra_args(lists["extra_args"])

    argv = [COMMAND, "--unattended", "--domain=" + domain, "--realm=" + realm]
    argv.extend("--server=" + server for server in servers)
    if hostname:
        argv.append("--hostname=" + hostname)
    if principal:
        argv.extend(["--principal=" + principal, "--password=" + password])
    else:
        argv.append("--password=" + otp)
    if flags["mkhomedir"]:
        argv.append("--mkhomedir")
    if flags["no_ntp"]:
        argv.append("--no-ntp")
    argv.extend("--ntp-server=" + server for server in lists["ntp_servers"])
    if strings["ntp_pool"]:
        argv.append("--ntp-pool=" + strings["ntp_pool"])
    if flags["force_join"]:
        argv.append("--force-join")
    argv.extend(lists["extra_args"])
    return argv


class FilterModule:
    def filters(self):
        return {"ipa_client_install_argv": ipa_client_install_argv}
