"""A user's session on a scenario's cluster: session_client.py running in the
background on the scheduler host with the cluster's own Dask, holding results on
every worker and computing until finish() asks for its report."""

import json
import os
import re
import time

from helpers import get_host

DASK_PYTHON = "/opt/dask/venvs/current/bin/python"
CLIENT = os.path.join(os.path.dirname(__file__), "session_client.py")


class Session:
    def __init__(self, scheduler, name, workers, long_task_until=""):
        self.host = get_host(scheduler)
        self.workdir = f"/root/{name}"
        self.host.check_output(f"rm -rf {self.workdir} && mkdir -p {self.workdir}")
        with open(CLIENT) as f:
            source = f.read()
        self.host.check_output(f"cat > {self.workdir}/client.py <<'EOF'\n{source}\nEOF")
        # The scheme the cluster runs: tls:// unless the hosts opted out (no TLS config).
        scheme = "tls" if self.host.file("/etc/dask/20-tls.yaml").exists else "tcp"
        address = f"{scheme}://" + self.host.check_output("hostname -I").split()[0] + ":8786"
        self.host.check_output(
            f"nohup {DASK_PYTHON} {self.workdir}/client.py {address} {self.workdir} {workers} {long_task_until} "
            f">{self.workdir}/client.log 2>&1 & echo $! >{self.workdir}/pid"
        )
        self._wait_for("ready", 180)

    def _wait_for(self, name, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.host.file(f"{self.workdir}/{name}").exists:
                return
            time.sleep(1)
        log = self.host.run(f"tail -50 {self.workdir}/client.log").stdout
        raise AssertionError(f"the client wrote no {name} within {timeout}s:\n{log}")

    def close(self):
        """End the client if it still runs (a test that failed before finish()): a client left
        holding results would keep the scheduler from ever being drained."""
        self.host.run(f"kill $(cat {self.workdir}/pid) 2>/dev/null")

    def finish(self):
        """Stop computing, gather every held result, return the report."""
        self.host.check_output(f"touch {self.workdir}/stop")
        self._wait_for("result.json", 600)
        return json.loads(self.host.file(f"{self.workdir}/result.json").content_string)


class Sessions:
    """What a test's session fixture yields: call it to start a Session (named after the test),
    and close() at the test's end ends every one still running, whatever happened."""

    def __init__(self, scheduler, test_name, workers):
        self.scheduler, self.name, self.workers, self.started = scheduler, re.sub(r"\W", "_", test_name), workers, []

    def __call__(self, workers=None, long_task_until=""):
        self.started.append(Session(self.scheduler, f"{self.name}{len(self.started)}", workers or self.workers,
                                    long_task_until))
        return self.started[-1]

    def close(self):
        for session in self.started:
            session.close()
