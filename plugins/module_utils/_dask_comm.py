# -*- coding: utf-8 -*-
# Copyright: dataplatform.dask developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Talk to a Dask scheduler over its comm port, for the modules of this collection.

Private to the collection (leading underscore): no stability promise to anyone else.

The modules use the scheduler's comm-level handlers (``identity``, ``versions``,
``broadcast``, ``retire_workers``...) through ``distributed.core.rpc``: unlike a
``distributed.Client`` this registers nothing on the scheduler and needs no HTTP
route to be enabled (the HTTP API routes are off by default and unauthenticated).

Only ``scheduler_module`` needs Ansible: the rest also runs on the workers, where
dask_worker's termination watch retires its worker with ``_dask_retire`` (the same code
as the ``retire_workers`` module) from a Python that has Dask and no Ansible.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import traceback

try:
    from distributed.comm.core import CommClosedError
    from distributed.core import rpc
    from distributed.security import Security
except ImportError:
    HAS_DISTRIBUTED = False
    DISTRIBUTED_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_DISTRIBUTED = True
    DISTRIBUTED_IMPORT_ERROR = None

# Said after missing_required_lib("distributed"): the usual cause is a module run by
# the system Python of a host whose Dask lives in a venv.
DISTRIBUTED_HINT = (
    "Run this module with the Python of the Dask virtualenv, e.g. set "
    "ansible_python_interpreter=/opt/dask/venvs/current/bin/python for the host it runs on, "
    "or install dask[distributed] (the version the cluster runs) for the interpreter that runs it."
)


# Options of every module that talks to a scheduler; documented by the doc fragment
# dataplatform.dask.scheduler_connection.
SCHEDULER_CONNECTION_SPEC = dict(
    scheduler_address=dict(type="str", required=True),
    tls_ca_file=dict(type="path"),
    tls_cert=dict(type="path"),
    tls_key=dict(type="path"),
)


def scheduler_module(argument_spec, seconds_options):
    """Build the AnsibleModule of a module that talks to a scheduler: the connection
    options added, ``distributed`` required, the options in ``seconds_options`` positive."""
    from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # pylint: disable=import-outside-toplevel

    module = AnsibleModule(
        argument_spec=dict(SCHEDULER_CONNECTION_SPEC, **argument_spec),
        required_by=dict(tls_key=["tls_cert"]),
        supports_check_mode=True,
    )
    if not HAS_DISTRIBUTED:
        module.fail_json(
            msg="%s %s" % (missing_required_lib("distributed"), DISTRIBUTED_HINT),
            exception=DISTRIBUTED_IMPORT_ERROR,
        )
    for name in seconds_options:
        if module.params[name] <= 0:
            module.fail_json(msg="%s must be a positive number of seconds, got %s." % (name, module.params[name]))
    return module


class DaskCommError(Exception):
    """A foreseeable failure to talk to a Dask server, as one sentence for a person.

    The message says what was tried, what was seen and what to do; ``detail`` keeps the whole
    chain of exception texts for a caller that wants to log it (never a traceback).
    ``permanent`` marks failures that retrying will not cure (a certificate from the wrong
    CA, a malformed address), so a caller that waits can stop at once.
    """

    def __init__(self, message, detail=None, permanent=False):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.permanent = permanent


def address_scheme(address):
    """Return the comm scheme of a Dask address (``tcp`` when it has none, as Dask defaults)."""
    scheme, sep, dummy = address.rpartition("://")
    return scheme.lower() if sep else "tcp"


def connection_args(address, ca_file=None, cert=None, key=None):
    """Return ``connection_args`` for ``rpc(address, ...)``.

    Without TLS files this is ``{}``: a plain ``tcp://`` connection.  With them it is what
    a Dask client of a ``require-encryption`` cluster uses (mutual TLS, the cluster CA).
    Mismatches between the address scheme and the files are refused here because Dask
    reports them badly (a TypeError about ``ssl_context``, or a reset connection).
    """
    scheme = address_scheme(address)
    want_tls = bool(ca_file or cert or key)
    if scheme == "tls" and not want_tls:
        raise DaskCommError(
            "The scheduler address %s uses TLS but no client certificate was given: set tls_ca_file "
            "to the cluster CA and tls_cert/tls_key to a certificate signed by that CA." % address,
            permanent=True,
        )
    if want_tls and scheme != "tls":
        raise DaskCommError(
            "TLS files were given but the scheduler address %s uses %s://; "
            "use a tls:// address, or drop the tls_* options for a cluster without TLS." % (address, scheme),
            permanent=True,
        )
    if not want_tls:
        return {}
    if not (ca_file and cert):
        raise DaskCommError(
            "TLS to %s needs both tls_ca_file (the cluster CA) and tls_cert (a client certificate "
            "signed by it, with tls_key unless the key is in the same file)." % address,
            permanent=True,
        )
    for what, path in (("tls_ca_file", ca_file), ("tls_cert", cert), ("tls_key", key)):
        if path and not os.access(path, os.R_OK):
            raise DaskCommError(
                "%s %s is not a readable file on the host that runs this check; "
                "copy it there or point %s at the right path." % (what, path, what),
                permanent=True,
            )
    try:
        security = Security(
            tls_ca_file=ca_file,
            tls_client_cert=cert,
            tls_client_key=key,
            require_encryption=True,
        )
        return security.get_connection_args("client")
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise DaskCommError(
            "Could not load the TLS files (tls_ca_file=%s, tls_cert=%s, tls_key=%s): %s. "
            "They must be PEM files, and the key must belong to the certificate."
            % (ca_file, cert, key, exc),
            detail=repr(exc),
            permanent=True,
        )


def _causes(exc):
    """The exception and what it was raised from, outermost first (Dask wraps SSL errors twice)."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _brief(chain):
    """What was seen, shortly: Dask's first own words and the root cause, without its wrappers."""
    said = [str(e) for e in chain if str(e) and not str(e).startswith("Exception while trying to call remote method")]
    if not said:
        return type(chain[-1]).__name__
    first, root = said[0], said[-1]
    return root if root in first else "%s / %s" % (first, root)


def _explain(address, what, timeout, exc):
    """Turn an exception from talking to ``address`` into a DaskCommError with a useful sentence."""
    chain = _causes(exc)
    # ``full`` to recognise the failure and to return as detail, ``text`` to show in the sentence.
    full = " / ".join(str(e) or type(e).__name__ for e in chain)
    text = _brief(chain)
    tried = "Tried to %s on the Dask scheduler at %s" % (what, address)

    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return DaskCommError(
            "%s: the TLS handshake failed because the scheduler's certificate is not signed by "
            "tls_ca_file (%s). Use the CA of this cluster." % (tried, text),
            detail=full,
            permanent=True,
        )
    if "UNKNOWN_CA" in full or "CERTIFICATE_REQUIRED" in full or "BAD_CERTIFICATE" in full:
        return DaskCommError(
            "%s: the scheduler refused the TLS client certificate (%s). "
            "tls_cert must be signed by the cluster's CA." % (tried, text),
            detail=full,
            permanent=True,
        )
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return DaskCommError(
            "%s: the TLS connection failed (%s). Check that the scheduler listens with TLS; a refused "
            "client certificate can look like this too: tls_cert must be signed by the cluster's CA. "
            "The scheduler's log says why." % (tried, text),
            detail=full,
        )
    if isinstance(exc, asyncio.TimeoutError):
        return DaskCommError(
            "%s: no answer within %s s. Something listens there but did not answer like a Dask "
            "scheduler in time: check the port (the comm port, usually 8786, not the dashboard), "
            "use tls:// if the cluster requires encryption, or raise timeout if the scheduler is "
            "busy." % (tried, timeout),
            detail=full,
        )
    if "Timed out trying to connect" in full:
        return DaskCommError(
            "%s: could not connect within %s s (%s). Check that the scheduler runs, that the "
            "address and port are right and that no firewall or security group blocks it."
            % (tried, timeout, text),
            detail=full,
        )
    if isinstance(exc, CommClosedError) and address_scheme(address) == "tls":
        # With TLS 1.3 the client's handshake is over before the scheduler checks the client
        # certificate; its refusal then often arrives as a bare reset, without the alert.
        return DaskCommError(
            "%s: the scheduler closed the TLS connection before answering (%s). Most often it "
            "refused the client certificate: tls_cert must be signed by the cluster's CA. The "
            "scheduler's log says why." % (tried, text),
            detail=full,
        )
    if isinstance(exc, CommClosedError):
        return DaskCommError(
            "%s: the connection was closed before an answer (%s). If the cluster requires TLS, "
            "use a tls:// address with tls_ca_file/tls_cert/tls_key; otherwise check the "
            "scheduler's log." % (tried, text),
            detail=full,
        )
    if isinstance(exc, ValueError):
        return DaskCommError(
            "%s: %s is not a usable Dask address (%s). Write it as tcp://HOST:PORT or tls://HOST:PORT."
            % (tried, address, text),
            detail=full,
            permanent=True,
        )
    return DaskCommError("%s: %s." % (tried, text), detail=full)


async def call_scheduler(address, func, what, timeout, conn_args=None):
    """Run ``await func(remote)`` against the scheduler at ``address`` within ``timeout`` seconds.

    ``remote`` is a ``distributed.core.rpc``: ``await remote.identity()`` calls the
    scheduler's ``identity`` handler.  ``timeout`` bounds connecting (Dask retries refused
    connections until then), and, with a grace of at most a second, the whole exchange:
    a port that accepts but never answers would otherwise hang forever.  ``what``
    names the operation for the error message ("read the cluster state").

    Foreseeable failures raise DaskCommError; a remote handler's own exception (a real
    bug or an unsupported operation) is re-raised as DaskCommError too, with its text.
    """
    async def run():
        # rpc's timeout is the connect timeout; close_rpc on exit says goodbye properly
        # so the scheduler does not log a broken connection for every check.
        async with rpc(address, timeout=timeout, connection_args=conn_args or {}) as remote:
            return await func(remote)

    # Dask's connect() gives up by itself after ``timeout`` with a clear "Timed out trying to
    # connect"; the outer deadline is the backstop for a peer that connects but never answers,
    # set a little later so that Dask's own error wins when both would fire.
    grace = min(1.0, 0.25 * timeout)
    try:
        return await asyncio.wait_for(run(), timeout + grace)
    except (OSError, asyncio.TimeoutError, ssl.SSLError, ValueError) as exc:
        # CommClosedError is an OSError, SSL failures arrive wrapped in it.
        raise _explain(address, what, timeout, exc)
    except Exception as exc:  # pylint: disable=broad-except
        # An error raised by a handler on the scheduler travels back as that exception
        # (e.g. an operation this Dask version lacks): report it in words, not a traceback.
        raise DaskCommError(
            "Tried to %s on the Dask scheduler at %s and got %s: %s"
            % (what, address, type(exc).__name__, exc),
            detail=repr(exc),
        )
