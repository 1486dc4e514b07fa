# -*- coding: utf-8 -*-
"""Shared fixtures of the unit tests: real in-process Dask servers (see inprocess.py for
how the collection becomes importable)."""

from __future__ import annotations

import asyncio

import pytest
from inprocess import DaskLoop, Data, import_collection

import_collection()


@pytest.fixture(scope="session")
def dask_loop():
    loop = DaskLoop()
    yield loop
    loop.close()


class Cluster:
    """A scheduler and named workers, started for one test and closed after it."""

    def __init__(self, dask_loop, tmp_path, security=None):
        from distributed import Scheduler

        self.dask_loop = dask_loop
        self.tmp_path = tmp_path
        self.security = security
        self.servers = []
        self.pending = []

        async def start():
            # The HTTP server (not only the dashboard) binds 8787 unless told otherwise.
            return await Scheduler(
                host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0", security=security
            )

        self.scheduler = dask_loop.run(start())
        self.servers.append(self.scheduler)

    @property
    def address(self):
        return self.scheduler.address

    async def _start_worker(self, name, worker_class):
        from distributed import Worker

        worker_class = worker_class or Worker
        worker = await worker_class(
            self.scheduler.address,
            name=name,
            host="127.0.0.1",
            nthreads=1,
            security=self.security,
            local_directory=str(self.tmp_path / "dask-worker-space"),
        )
        self.servers.append(worker)
        return worker

    def add_worker(self, name, worker_class=None):
        return self.dask_loop.run(self._start_worker(name, worker_class))

    def add_worker_later(self, name, delay):
        """Start a worker ``delay`` seconds from now, while the test does something else."""
        async def later():
            await asyncio.sleep(delay)
            return await self._start_worker(name, None)

        self.pending.append(asyncio.run_coroutine_threadsafe(later(), self.dask_loop.loop))

    def status_of(self, name):
        """The status of worker ``name`` as the scheduler has it (None if unknown)."""
        async def read():
            for ws in self.scheduler.workers.values():
                if str(ws.name) == name:
                    return ws.status.name
            return None

        return self.dask_loop.run(read())

    def close(self):
        for future in self.pending:
            future.cancel()

        async def close_all():
            # Workers first, so that they leave the scheduler cleanly.
            for server in reversed(self.servers):
                await server.close()

        self.dask_loop.run(close_all())


@pytest.fixture
def make_cluster(dask_loop, tmp_path):
    """``make_cluster(security=None)`` -> a running Cluster with no workers yet."""
    clusters = []

    def make(security=None):
        cluster = Cluster(dask_loop, tmp_path, security)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


@pytest.fixture
def make_data():
    made = []

    def make(cluster):
        made.append(Data(cluster))
        return made[-1]

    yield make
    for data in made:
        data.close()


# ---------------------------------------------------------------------------------------
# A cluster CA with a certificate for every role, and a second, foreign CA with its own
# certificate, made with `cryptography` the way an operator's PKI would.


def _write_pem(path, key=None, cert=None):
    from cryptography.hazmat.primitives import serialization

    data = b""
    if cert is not None:
        data += cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    path.write_bytes(data)
    return str(path)


def _make_certificate(common_name, issuer_key=None, issuer_cert=None, days=1):
    """A CA (no issuer) or a leaf certificate for 127.0.0.1 signed by the issuer, valid
    for ``days`` days."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if issuer_cert is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        return key, builder.sign(key, hashes.SHA256())
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        critical=False,
    ).add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _cluster_files(directory, days):
    """A cluster CA and one node certificate valid for ``days`` days: paths ca, node_cert, node_key."""
    ca_key, ca_cert = _make_certificate("dask-test-ca", days=days)
    node_key, node_cert = _make_certificate("dask-node", ca_key, ca_cert, days=days)
    return {
        "ca": _write_pem(directory / "ca.pem", cert=ca_cert),
        "node_cert": _write_pem(directory / "node.crt", cert=node_cert),
        "node_key": _write_pem(directory / "node.key", key=node_key),
    }


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """Paths: ca, node_cert, node_key (cluster CA, one day), other_ca, other_cert, other_key (foreign CA)."""
    directory = tmp_path_factory.mktemp("tls")
    other_ca_key, other_ca_cert = _make_certificate("other-ca")
    other_key, other_cert = _make_certificate("intruder", other_ca_key, other_ca_cert)
    return dict(
        _cluster_files(directory, days=1),
        other_ca=_write_pem(directory / "other-ca.pem", cert=other_ca_cert),
        other_cert=_write_pem(directory / "other.crt", cert=other_cert),
        other_key=_write_pem(directory / "other.key", key=other_key),
    )


@pytest.fixture(scope="session")
def month_tls_files(tmp_path_factory):
    """Paths: ca, node_cert, node_key, as tls_files but valid for 30 days."""
    return _cluster_files(tmp_path_factory.mktemp("tls-month"), days=30)


def _security(tls_files):
    """The Security of a require-encryption cluster whose nodes share one certificate."""
    from distributed.security import Security

    cert, key = tls_files["node_cert"], tls_files["node_key"]
    return Security(
        tls_ca_file=tls_files["ca"],
        tls_scheduler_cert=cert, tls_scheduler_key=key,
        tls_worker_cert=cert, tls_worker_key=key,
        tls_client_cert=cert, tls_client_key=key,
        require_encryption=True,
    )


@pytest.fixture(scope="session")
def tls_security(tls_files):
    return _security(tls_files)


@pytest.fixture(scope="session")
def month_tls_security(month_tls_files):
    return _security(month_tls_files)
