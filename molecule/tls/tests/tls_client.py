"""A client on the controller: connect to the scheduler with the given TLS files (none:
plain), compute something that needs both workers, print the result and exit 0; any
failure to connect exits 1 with the error. Without TLS files, Dask's own configuration
(~/.config/dask) decides how to connect.

    python tls_client.py ADDRESS CA CERT KEY     (empty strings for none)
"""

import sys

from distributed import Client
from distributed.security import Security


def main(address, ca, cert, key):
    security = Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,
                        require_encryption=bool(ca)) if ca else None
    try:
        client = Client(address, security=security, timeout=15)
    except Exception as e:  # noqa: BLE001 - the test reads the error
        print(f"refused: {type(e).__name__}: {e}")
        return 1
    with client:
        client.wait_for_workers(2, timeout=60)
        total = client.submit(sum, client.map(lambda x: x * x, range(1000))).result()
        print(f"computed {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(arg or None for arg in sys.argv[1:5])))
