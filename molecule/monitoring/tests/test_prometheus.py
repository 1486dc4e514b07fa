"""Prometheus: real metrics on the Dask dashboards, a server that scrapes every target of
the inventory, and a worker count that agrees with the collection's health module."""

import pytest
from conftest import PROMETHEUS, SCHEDULER, WORKERS, DASK_PYTHON, cluster_health, ip_of, wait_until

from helpers import get_host

HOSTS = [SCHEDULER, *WORKERS, PROMETHEUS]


def fetch(host, url):
    """GET url from a host with the Dask venv's Python, trusting the cluster CA."""
    return get_host(host).check_output(
        f"{DASK_PYTHON} -c \"import ssl, sys, urllib.request; "
        "ctx = ssl.create_default_context(cafile='/etc/dask/tls/ca.pem'); "
        f"sys.stdout.write(urllib.request.urlopen('{url}', context=ctx).read().decode())\""
    )


def test_the_scheduler_serves_real_metrics_over_https():
    text = fetch(SCHEDULER, f"https://{ip_of(SCHEDULER)}:8787/metrics")
    # Without prometheus_client Dask answers 200 with a comment line only.
    assert 'dask_scheduler_workers{state="idle"}' in text, text[:500]


@pytest.mark.parametrize("worker", WORKERS)
def test_each_worker_serves_real_metrics(worker):
    text = fetch(worker, f"http://{ip_of(worker)}:8788/metrics")
    assert "dask_worker_threads 2.0" in text, text[:500]


def test_prometheus_scrapes_every_target_of_the_inventory(prometheus):
    expected = {("dask-scheduler-https", SCHEDULER)} | {("dask-worker", w) for w in WORKERS} | {("node", h) for h in HOSTS}

    def all_up():
        # The targets of the generated configuration, and `up` of each (series of Debian's default
        # configuration, from before the role configured Prometheus, carry no host label).
        active = {(t["labels"]["job"], t["labels"].get("host")): t["health"]
                  for t in prometheus.get("/api/v1/targets", state="active")["activeTargets"]}
        up = {(m["job"], m["host"]): v for m, v in prometheus.query('up{host!=""}')}
        if set(active) == expected and set(active.values()) == {"up"} and set(up) == expected \
                and set(up.values()) == {1.0}:
            return up
        return None

    up = wait_until(all_up, 90, what="up == 1 for exactly the inventory's targets")
    assert len(up) == 7


def test_prometheus_worker_count_agrees_with_cluster_health(prometheus):
    def both(expected):
        """(cluster_health's count, Prometheus' count) once both are the expected count."""
        def probe():
            seen = prometheus.query("sum(dask_scheduler_workers)")
            counts = (cluster_health()["worker_count"], int(seen[0][1]) if seen else None)
            return counts if counts == (expected, expected) else None
        return wait_until(probe, 90, what=f"cluster_health and Prometheus both counting {expected} workers")

    assert both(2) == (2, 2)
    # One worker leaves (its service stops: the scheduler removes it): both see 1, then 2 again.
    worker = get_host(WORKERS[1])
    worker.check_output("systemctl stop dask-worker.service")
    try:
        assert both(1) == (1, 1)
    finally:
        worker.check_output("systemctl start dask-worker.service")
    assert both(2) == (2, 2)


@pytest.mark.parametrize("host, unit", [(h, "prometheus-node-exporter.service") for h in HOSTS]
                         + [(PROMETHEUS, "prometheus.service")])
def test_monitoring_services_are_hardened_and_listen_on_the_private_address_only(host, unit):
    machine = get_host(host)
    properties = machine.service(unit).systemd_properties
    assert properties["ActiveState"] == "active"
    assert properties["NoNewPrivileges"] == "yes"
    assert properties["ProtectSystem"] == "strict"
    assert properties["ProtectHome"] == "yes"
    assert properties["PrivateTmp"] == "yes"
    assert properties["User"] == "prometheus"
    port = 9090 if unit == "prometheus.service" else 9100
    listening = machine.check_output(f"ss -Hltn 'sport = :{port}'").split()
    assert f"{ip_of(host)}:{port}" in listening and f"0.0.0.0:{port}" not in listening and f"*:{port}" not in listening


def test_prometheus_knows_when_each_hosts_certificate_and_the_ca_expire(prometheus):
    # dask_common writes dask_tls.prom into node exporter's textfile directory.
    def read():
        found = {(m["host"], m["certificate"]): v
                 for m, v in prometheus.query("dask_tls_certificate_not_after_seconds - time()")}
        return found if len(found) == 2 * len([SCHEDULER, *WORKERS]) else None

    seconds_left = wait_until(read, 90, what="the certificates' expiry of every Dask host in Prometheus")
    assert {host for host, _certificate in seconds_left} == {SCHEDULER, *WORKERS}
    for (host, certificate), left in seconds_left.items():
        # What the role issues: host certificates for a year, the CA for ten.
        days = left / 86400
        assert (360 < days <= 365) if certificate == "host" else (3640 < days <= 3650), (host, certificate, days)
