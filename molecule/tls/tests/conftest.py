"""Fixtures of the TLS scenario: the cluster's CA and client bundle on the controller
(made by the collection), and clients that connect from the controller."""

import datetime
import os
import subprocess
import sys
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from client_session import Sessions
from helpers import get_host

SCHEDULER = "dask-tls-scheduler"
WORKERS = ["dask-tls-worker-1", "dask-tls-worker-2"]
CA_DIR = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ca")
BUNDLE = os.path.join(CA_DIR, "clients", "client")
CLIENT = os.path.join(os.path.dirname(__file__), "tls_client.py")


@pytest.fixture
def session(request):
    """Start a client session on the scheduler host, ended at the test's end."""
    sessions = Sessions(SCHEDULER, request.node.name, len(WORKERS))
    yield sessions
    sessions.close()


@pytest.fixture(scope="session")
def scheduler_ip():
    return get_host(SCHEDULER).check_output("hostname -I").split()[0]


def connect(address, ca=None, cert=None, key=None, home=None):
    """Run tls_client.py from the controller with the controller's Dask; returns (rc, output).
    Dask reads its configuration from HOME/.config/dask: an empty HOME unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env["HOME"] = home or tempfile.mkdtemp()
    args = [sys.executable, CLIENT, address, ca or "", cert or "", key or ""]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, env=env)
    return run.returncode, run.stdout + run.stderr


def issue(directory, name, ca_cert=None, ca_key=None, days=(-1, 30)):
    """A key and certificate in directory/name.{key,pem}: self-signed CA when ca_cert is
    None, else signed by it, valid from days[0] to days[1] relative to now."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject if ca_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
    )
    if ca_cert is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    cert = builder.sign(ca_key or key, hashes.SHA256())
    paths = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert, key, paths


def cluster_ca():
    with open(os.path.join(CA_DIR, "ca.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(CA_DIR, "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return cert, key
