"""Mutual TLS: who gets in, who does not, and certificate renewal without data loss."""

import os
import re
import shutil
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from conftest import BUNDLE, SCHEDULER, WORKERS, cluster_ca, connect, issue

from client_session import Session
from helpers import PROJECT, flat, get_host, run_playbook

with open(os.path.join(PROJECT, "roles", "dask_common", "defaults", "main.yml")) as defaults:
    VERSION = re.search(r'^dask_common_version: "(.+)"$', defaults.read(), re.M).group(1)
EXPECTED = f"computed {sum(x * x for x in range(1000))}"


@pytest.fixture
def address(scheduler_ip):
    return f"tls://{scheduler_ip}:8786"


def test_a_client_with_the_collections_bundle_computes(address, tmp_path):
    # What the README tells users: the bundle's dask-tls.yaml in ~/.config/dask, then connect.
    config = tmp_path / ".config" / "dask"
    config.mkdir(parents=True)
    shutil.copy(os.path.join(BUNDLE, "dask-tls.yaml"), config)
    for secret in ("client.key", "dask-tls.yaml"):
        assert stat.S_IMODE(os.stat(os.path.join(BUNDLE, secret)).st_mode) == 0o600
    rc, out = connect(address, home=str(tmp_path))
    assert rc == 0 and EXPECTED in out, out


def test_a_certificate_the_cluster_ca_signs_is_accepted(address, tmp_path):
    # The control for the refusals below: same client, a valid certificate.
    ca_cert, ca_key = cluster_ca()
    cert, key = issue(tmp_path, "alice", ca_cert, ca_key)[2]
    rc, out = connect(address, os.path.join(BUNDLE, "ca.pem"), cert, key)
    assert rc == 0 and EXPECTED in out, out


def test_plain_tcp_is_refused(scheduler_ip):
    rc, out = connect(f"tcp://{scheduler_ip}:8786")
    assert rc == 1 and "refused" in out, out


def test_a_client_without_a_certificate_is_refused(address):
    rc, out = connect(address, os.path.join(BUNDLE, "ca.pem"))
    assert rc == 1 and "refused" in out, out


def test_a_certificate_from_another_ca_is_refused(address, tmp_path):
    other_cert, other_key, (other_ca, _other_ca_key) = issue(tmp_path, "other-ca")
    cert, key = issue(tmp_path, "mallory", other_cert, other_key)[2]
    rc, out = connect(address, other_ca, cert, key)
    assert rc == 1 and "refused" in out, out
    # Trusting the cluster CA does not help a certificate it did not sign.
    rc, out = connect(address, os.path.join(BUNDLE, "ca.pem"), cert, key)
    assert rc == 1 and "refused" in out, out


def test_an_expired_certificate_is_refused(address, tmp_path):
    ca_cert, ca_key = cluster_ca()
    cert, key = issue(tmp_path, "bob", ca_cert, ca_key, days=(-30, -1))[2]
    rc, out = connect(address, os.path.join(BUNDLE, "ca.pem"), cert, key)
    assert rc == 1 and "refused" in out, out


def test_keys_are_readable_by_the_service_only_and_the_ca_key_stays_home():
    for name in [SCHEDULER, *WORKERS]:
        host = get_host(name)
        key = host.file("/etc/dask/tls/host.key")
        assert (key.user, key.group, key.mode) == ("dask", "dask", 0o600)
        assert host.run("find / -xdev -name ca.key").stdout.strip() == ""
        config = host.file("/etc/dask/20-tls.yaml").content_string
        assert "require-encryption: true" in config


def test_every_listener_speaks_tls():
    # The scheduler, each worker and nanny advertise tls:// addresses.
    run = run_playbook("health.yml")
    assert run.rc == 0, run.output[-3000:]
    for worker in WORKERS:
        assert re.search(rf"{worker}\s+running\s+.*\stls://", run.output), run.output[-3000:]


def test_the_dashboard_serves_https_only(scheduler_ip):
    host = get_host(SCHEDULER)
    https = host.run(
        "/opt/dask/venvs/current/bin/python -c \"import ssl, urllib.request; "
        "ctx = ssl.create_default_context(cafile='/etc/dask/tls/ca.pem'); "
        "ctx.load_cert_chain('/etc/dask/tls/host.pem', '/etc/dask/tls/host.key'); ctx.check_hostname = False; "
        f"print(urllib.request.urlopen('https://{scheduler_ip}:8787/health', context=ctx).read().decode())\""
    )
    assert https.rc == 0 and https.stdout.strip() == "ok", https.stderr
    plain = host.run(
        f"/opt/dask/venvs/current/bin/python -c \"import urllib.request; urllib.request.urlopen('http://{scheduler_ip}:8787/health')\""
    )
    assert plain.rc != 0


def test_a_host_certificate_from_another_ca_is_replaced_by_the_next_deploy(tmp_path):
    # A re-run keeps a certificate that fits without signing it again; one that names
    # another CA (same key, same names) must be replaced, and the worker restarted on it.
    worker = get_host(WORKERS[0])
    current = x509.load_pem_x509_certificate(worker.file("/etc/dask/tls/host.pem").content)
    other_ca, other_ca_key, _paths = issue(tmp_path, "other-ca")
    foreign = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(other_ca.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(current.not_valid_before_utc)
        .not_valid_after(current.not_valid_after_utc)
        .add_extension(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
        .sign(other_ca_key, hashes.SHA256())
    )
    pem = foreign.public_bytes(serialization.Encoding.PEM).decode()
    worker.run_expect([0], f"cat > /etc/dask/tls/host.pem <<'EOF'\n{pem}EOF")
    started = worker.service("dask-worker").systemd_properties["ActiveEnterTimestamp"]

    run = run_playbook("site.yml")
    assert run.rc == 0, run.output[-3000:]
    assert run.changed[WORKERS[0]] > 0 and run.changed[WORKERS[1]] == 0, run.changed
    replaced = x509.load_pem_x509_certificate(worker.file("/etc/dask/tls/host.pem").content)
    ca_cert, _ca_key = cluster_ca()
    replaced.verify_directly_issued_by(ca_cert)
    assert replaced.public_key() == current.public_key()
    # site.yml waits until the restarted worker is registered again.
    assert worker.service("dask-worker").systemd_properties["ActiveEnterTimestamp"] != started


def serials():
    return {
        name: get_host(name).check_output(
            "python3 -c \"from cryptography import x509; "
            "print(x509.load_pem_x509_certificate(open('/etc/dask/tls/host.pem', 'rb').read()).serial_number)\""
        )
        for name in [SCHEDULER, *WORKERS]
    }


def test_due_certificates_are_renewed_by_the_rolling_upgrade_without_losing_results():
    due = ("-e", "dask_common_tls_renew_days=400")  # longer than the 365-day certificates: all due
    before = serials()
    run = run_playbook("site.yml", *due)
    assert run.rc == 0 and set(run.changed.values()) == {0}, run.output[-3000:]
    assert "Renewing it restarts the service: run playbooks/rolling_upgrade.yml" in flat(run.output)
    assert serials() == before

    client = Session(SCHEDULER, "renewal", len(WORKERS))
    run = run_playbook("rolling_upgrade.yml", *due, "-e", f"dask_common_version={VERSION}")
    report = client.finish()
    assert run.rc == 0, run.output[-4000:]
    after = serials()
    assert all(after[w] != before[w] for w in WORKERS), (before, after)
    # The scheduler is renewed only in a drained window (dask_upgrade_scheduler).
    assert after[SCHEDULER] == before[SCHEDULER]
    assert report["lost"] == {} and report["failed"] == 0, report
