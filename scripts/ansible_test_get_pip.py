"""Stand-in for the get-pip bootstrap script that `ansible-test --venv` downloads
from a host this machine cannot reach (ansible-test's own error message says to
save the script at ~/.ansible/test/cache/get_pip_<version>.py by hand; the
harness puts this file there). It installs the interpreter's bundled pip with
ensurepip, then `pip install`s what ansible-test asked for from the index."""

import subprocess
import sys

# get-pip options that pip itself does not know.
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")

if __name__ == "__main__":
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY_OPTIONS]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
