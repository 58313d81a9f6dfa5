"""Stand-in for the pip bootstrap script ansible-test downloads (get-pip-<version>.py).

ansible-test creates one virtual environment per sanity test and bootstraps pip into it with a
script fetched from ci-files.testing.ansible.com, a host this network cannot reach. `make sanity`
puts this file where ansible-test caches that script (~/.ansible/test/cache/get_pip_<version>.py)
when no real one is cached. It takes the same arguments (`--disable-pip-version-check pip==X
--no-setuptools --no-wheel`), bootstraps pip from the interpreter's own ensurepip (offline) and
then installs the requested pip version from the package index, like get-pip does.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")


def main() -> int:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    # A child process: ensurepip points PIP_CONFIG_FILE at /dev/null in the process that runs it,
    # which would hide the machine's pip configuration (index, certificate) from the install below.
    if subprocess.call([sys.executable, "-m", "ensurepip", "--default-pip"]) != 0:
        return 1
    return subprocess.call([sys.executable, "-m", "pip", "install", *args])


if __name__ == "__main__":
    sys.exit(main())
