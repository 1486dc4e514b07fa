"""Mutual TLS: who gets in, who does not, and certificate renewal without data loss."""

import datetime
import os
import re
import shutil
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from conftest import BUNDLE, CA_DIR, SCHEDULER, WORKERS, cluster_ca, connect, issue

from helpers import flat, get_host, main_pids, run_playbook

EXPECTED = f"computed {sum(x * x for x in range(1000))}"
# The scheduler's process at the start of the tests: only the drained window may replace it.
SCHEDULER_PID = main_pids([SCHEDULER], "dask-scheduler.service")


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


def reissued(host_name, issuer, issuer_key, not_before, not_after):
    """Replace a host's certificate on disk with one for the same key and names, signed by
    ``issuer``, valid from ``not_before`` to ``not_after``; return the one it had."""
    host = get_host(host_name)
    current = x509.load_pem_x509_certificate(host.file("/etc/dask/tls/host.pem").content)
    other = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(issuer.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    pem = other.public_bytes(serialization.Encoding.PEM).decode()
    host.run_expect([0], f"cat > /etc/dask/tls/host.pem <<'EOF'\n{pem}EOF")
    return current


def test_host_certificates_that_do_not_fit_are_replaced_by_the_next_deploy(tmp_path):
    # A re-run keeps a certificate that fits without signing it again (idempotence). One that
    # names another CA (same key, same names), one that has expired and one that is not valid
    # yet are replaced on disk; the running services, which keep the certificate they loaded,
    # get a restart pending (applied drained by the tests below).
    ca_cert, ca_key = cluster_ca()
    other_ca, other_ca_key, _paths = issue(tmp_path, "other-ca")
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    current = {
        WORKERS[0]: reissued(WORKERS[0], other_ca, other_ca_key, now - day, now + 300 * day),
        WORKERS[1]: reissued(WORKERS[1], ca_cert, ca_key, now - 400 * day, now - day),
        SCHEDULER: reissued(SCHEDULER, ca_cert, ca_key, now + day, now + 300 * day),
    }
    before = main_pids(WORKERS, "dask-worker.service")

    run = run_playbook("site.yml")
    assert run.rc == 0, run.output[-3000:]
    assert all(run.changed[name] > 0 for name in current), run.changed
    for name, old in current.items():
        replaced = x509.load_pem_x509_certificate(get_host(name).file("/etc/dask/tls/host.pem").content)
        replaced.verify_directly_issued_by(ca_cert)
        assert replaced.public_key() == old.public_key()
        assert replaced.not_valid_before_utc < now < replaced.not_valid_after_utc - 300 * day
        assert f"{name}: /etc/dask/tls/host.pem" in flat(run.output), run.output[-3000:]
    assert main_pids(WORKERS, "dask-worker.service") == before
    assert main_pids([SCHEDULER], "dask-scheduler.service") == SCHEDULER_PID


def serials():
    return {
        name: get_host(name).check_output(
            "python3 -c \"from cryptography import x509; "
            "print(x509.load_pem_x509_certificate(open('/etc/dask/tls/host.pem', 'rb').read()).serial_number)\""
        )
        for name in [SCHEDULER, *WORKERS]
    }


def test_due_certificates_are_issued_by_site_yml_and_applied_by_the_rolling_upgrade(session, address, tmp_path):
    # Longer-lived certificates than the current ones' remaining days: all of them are due.
    due = ("-e", "dask_common_tls_renew_days=400", "-e", "dask_common_tls_cert_days=500")
    before, pids = serials(), main_pids(WORKERS, "dask-worker.service")
    bundle_before = open(os.path.join(BUNDLE, "client.pem")).read()
    client = session()
    # A scheduler setting changes with them: a scheduler-side change, staged too. A new
    # client bundle is made in the same run, with --diff and -v: its key is in no log.
    run = run_playbook("site.yml", *due, "-e", "dask_scheduler_worker_ttl=300s", "--diff", "-v",
                       "-e", '{"dask_common_tls_client_names": ["client", "auditor"]}')
    assert run.rc == 0, run.output[-3000:]
    with open(os.path.join(CA_DIR, "clients", "auditor", "dask-tls.yaml")) as bundle:
        assert "PRIVATE KEY" in bundle.read()  # what the log is searched for
    assert "PRIVATE KEY" not in run.output
    # The existing client's certificate was due as well: its bundle holds a new one.
    with open(os.path.join(BUNDLE, "client.pem")) as renewed:
        assert renewed.read() != bundle_before
    config = tmp_path / ".config" / "dask"
    config.mkdir(parents=True)
    shutil.copy(os.path.join(BUNDLE, "dask-tls.yaml"), config)
    rc, out = connect(address, home=str(tmp_path))
    assert rc == 0 and EXPECTED in out, out
    assert all(run.changed[name] > 0 for name in [SCHEDULER, *WORKERS]), run.changed
    staged = serials()
    assert all(staged[name] != before[name] for name in staged), (before, staged)
    assert main_pids(WORKERS, "dask-worker.service") == pids
    assert main_pids([SCHEDULER], "dask-scheduler.service") == SCHEDULER_PID
    assert f"{SCHEDULER}: /etc/dask/50-scheduler.yaml, /etc/dask/tls/host.pem" in flat(run.output), run.output[-3000:]

    run = run_playbook("rolling_upgrade.yml", *due, "-e", "dask_scheduler_worker_ttl=300s")
    report = client.finish()
    assert run.rc == 0, run.output[-4000:]
    # Issued once: the rolling upgrade applied what site.yml staged.
    assert serials() == staged
    after = main_pids(WORKERS, "dask-worker.service")
    assert all(after[w] != pids[w] for w in WORKERS), (pids, after)
    assert report["lost"] == {} and report["failed"] == 0, report
    assert len(report["removals"]) == len(WORKERS), report["removals"]
    # The scheduler only in a drained window (dask_upgrade_scheduler): pending still.
    assert main_pids([SCHEDULER], "dask-scheduler.service") == SCHEDULER_PID
    assert "The scheduler has a restart pending (/etc/dask/50-scheduler.yaml, /etc/dask/tls/host.pem)" in flat(run.output)


def test_the_scheduler_change_waits_for_a_drained_window_then_is_applied(session):
    # Over the comm port, with the dashboard on HTTPS: the drain check does not use it.
    client = session()
    args = ("-e", "dask_scheduler_worker_ttl=300s", "-e", "dask_upgrade_scheduler=true")
    run = run_playbook("rolling_upgrade.yml", *args, "-e", "dask_scheduler_drain_timeout=10")
    assert run.rc != 0
    assert "The scheduler was not drained within 10 s (The scheduler still holds" in flat(run.output), run.output[-3000:]
    assert main_pids([SCHEDULER], "dask-scheduler.service") == SCHEDULER_PID
    report = client.finish()
    assert report["lost"] == {} and report["failed"] == 0, report

    # The client has gone: the scheduler restarts on its new certificate and setting.
    run = run_playbook("rolling_upgrade.yml", *args)
    assert run.rc == 0, run.output[-4000:]
    assert main_pids([SCHEDULER], "dask-scheduler.service") != SCHEDULER_PID
    # The certificates' days left: those the processes present (the renewed ones, 500 days), the
    # CA's (ten years, warned about here with a threshold above that) and the client bundles'.
    run = run_playbook("health.yml", "-e", "dask_common_tls_ca_warn_days=4000")
    assert run.rc == 0 and "No restart pending." in run.output, run.output[-3000:]
    report = flat(run.output)
    days = re.search(r"TLS certificates, days left: scheduler ([\d.]+), CA ([\d.]+), client bundles client ([\d.]+)",
                     report)
    assert days, run.output[-3000:]
    scheduler_days, ca_days, client_days = map(float, days.groups())
    assert 499 < scheduler_days <= 500 and 499 < client_days <= 500 and 3640 < ca_days <= 3650, days.group(0)
    for worker in WORKERS:
        found = re.search(rf"{worker} +running .* ([\d.]+) tls://", report)
        assert found and 499 < float(found.group(1)) <= 500, run.output[-3000:]
    assert re.search(rf"WARNING: the cluster CA \(\S+/ca\.pem\) expires in {ca_days} days", report), run.output[-3000:]
    run = run_playbook("health.yml", "-e", "dask_health_certificate_min_days=600")
    assert run.rc != 0
    assert "TLS certificates the running processes present expire within 600.0 days" in flat(run.output)
    worker_ttl = get_host(SCHEDULER).check_output("grep worker-ttl /etc/dask/50-scheduler.yaml")
    assert "300s" in worker_ttl
