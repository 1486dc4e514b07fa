"""Bad input is refused with a message naming the fix, before anything changes
(runs first, against the joined hosts)."""

import pytest
from helpers import flat, run_converge

BAD_INPUTS = {
    "unknown join method": (["-e", "freeipa_client_join_method=realmd"], "freeipa_client_join_method must be"),
    "no keytab": (["-e", "freeipa_client_keytab_src="], "The sssd join needs two files on the controller"),
    "keytab path that is not a file": (
        ["-e", "freeipa_client_keytab_src=/nonexistent/host.keytab"],
        "one of which is not a file",
    ),
    "nobody allowed to log in": (
        ["-e", '{"freeipa_client_allowed_groups": []}'],
        "The sssd join cannot apply FreeIPA's HBAC rules",
    ),
    "unreachable server": (
        ["-e", '{"freeipa_client_servers": ["ipa9.ipa.test"]}', "-e", "freeipa_client_server_check_timeout=2"],
        "No FreeIPA server answers from",
    ),
    # ipa-client-install's preflight, up to where a real FreeIPA server is needed:
    # the stand-in has no HTTPS enrollment endpoint.
    "ipa-client-install without a FreeIPA server": (
        [
            "-e", "freeipa_client_join_method=ipa-client-install",
            "-e", "freeipa_client_otp=one-time-password",
            "-e", "freeipa_client_server_check_timeout=2",
        ],
        "on all of TCP 443, 389, 88",
    ),
    "password and one-time password": (
        [
            "-e", "freeipa_client_join_method=ipa-client-install",
            "-e", "freeipa_client_otp=one-time-password",
            "-e", "freeipa_client_principal=admin",
            "-e", "freeipa_client_password=secret",
        ],
        "Enroll either with an account",
    ),
    "certificate from the IPA CA without ipa-client-install": (
        ["-e", "freeipa_client_certificate_enabled=true"],
        "certmonger requests certificates from the IPA CA only on hosts enrolled by ipa-client-install",
    ),
}


@pytest.mark.parametrize("extra_args, message", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_refused_and_changes_nothing(extra_args, message):
    run = run_converge(*extra_args)
    assert run.rc != 0, run.output[-3000:]
    assert message in flat(run.output), run.output[-3000:]
    assert run.changed and set(run.changed.values()) == {0}, run.output[-3000:]
    # Secrets never reach the output.
    assert "one-time-password" not in run.output and "secret" not in run.output.replace("secrets", "")
