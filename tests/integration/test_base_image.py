"""The local stack's base image (scripts/base_image.py), for real: what `up` imported is a Debian root
filesystem with a relocated CPython 3.12 in /usr/local and the pinned Prefect, laid out like
prefecthq/prefect:3.9.1-python3.12; and a warm cache is only imported, never rebuilt."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from scripts import base_image

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def containers(conf: Path, *args: str, tool: str = "buildah", check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    result = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)  # buildah run makes an inherited stdin non-blocking
    if check:
        assert result.returncode == 0, f"{tool} {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def base(local_stack):
    """A working container of the base image in the stack's storage, as the stack's `up` imported it."""
    conf = Path(local_stack.state_dir()) / "containers" / "base-storage.conf"
    name = local_stack.local_stack_script.BASE_IMAGE
    ctr = containers(conf, "from", "--pull-never", name).stdout.strip().splitlines()[-1]

    def run(*command: str, user: str = "10001:10001") -> str:
        return containers(conf, "run", "--isolation", "chroot", "--network", "host", "--user", user, ctr, "--",
                          *command).stdout

    yield {"conf": conf, "name": name, "run": run}
    containers(conf, "rm", ctr, check=False)


def test_image_config_is_the_official_images(base):
    image = json.loads(containers(base["conf"], "image", "inspect", base["name"], tool="podman").stdout)[0]
    config = image["Config"]
    assert config["Entrypoint"] == ["/usr/bin/tini", "-g", "--", "/opt/prefect/entrypoint.sh"]
    assert config["WorkingDir"] == "/opt/prefect"
    assert not config.get("Cmd")
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/usr/local/bin:") and env["LANG"] == "C.UTF-8"
    assert len(image["RootFS"]["Layers"]) == 1


def test_python_is_a_usr_local_installation(base):
    probe = ("import json, ssl, sqlite3, sys, sysconfig, ctypes, lzma, bz2, zlib, readline, uuid, decimal, venv\n"
             "print(json.dumps({'prefix': sys.prefix, 'version': sys.version_info[:2], 'exe': sys.executable,\n"
             "  'libdir': sysconfig.get_config_var('LIBDIR'), 'purelib': sysconfig.get_paths()['purelib'],\n"
             "  'cafile': ssl.get_default_verify_paths().openssl_cafile}))")
    found = json.loads(base["run"]("python", "-c", probe))
    assert found["prefix"] == "/usr/local" and found["version"] == [3, 12]
    assert found["exe"] == "/usr/local/bin/python"
    assert found["libdir"] == "/usr/local/lib"  # the build prefix is gone from sysconfig too
    assert found["purelib"] == "/usr/local/lib/python3.12/site-packages"
    # libpython comes from /usr/local/lib, nothing from the host's build folder.
    ldd = base["run"]("ldd", "/usr/local/bin/python3.12")
    assert re.search(r"libpython3\.12\.so\.1\.0 => /usr/local/(bin/\.\./)?lib/libpython3\.12\.so\.1\.0", ldd), ldd
    assert "not found" not in ldd and ".pyenv" not in ldd
    for script in ("pip", "prefect", "pydoc3"):
        assert base["run"]("head", "-1", f"/usr/local/bin/{script}").startswith("#!/usr/local/bin/python3")
    # No test suites, no stdlib byte code, as python:3.12-slim.
    walk = ("import os\nfor top, dirs, files in os.walk('/usr/local/lib/python3.12'):\n"
            "    dirs[:] = [d for d in dirs if d != 'site-packages']\n"
            "    print(*[os.path.join(top, d) for d in dirs if d in ('test', 'tests', 'idle_test', '__pycache__')], sep='\\n')")
    assert base["run"]("python", "-c", walk).strip() == ""


def test_prefect_and_tini_run_as_a_non_root_user(base):
    assert base["run"]("id", "-u").strip() == "10001"
    out = base["run"]("/usr/bin/tini", "-s", "-g", "--", "/opt/prefect/entrypoint.sh", "prefect", "version")
    assert "3.9.1" in out.splitlines()[0]
    freeze = base["run"]("python", "-m", "pip", "freeze").split()
    assert "prefect==3.9.1" in freeze
    pins = base_image.locked_closure((base_image.REPO / "requirements.txt").read_text())

    def norm(pin: str) -> str:
        name, version = pin.split("==")
        return f"{base_image._norm(name)}=={version}"
    assert {norm(p) for p in freeze} <= set(pins), "the base holds only the lock's pins"


def test_a_warm_cache_is_imported_not_built_and_a_stale_image_is_replaced(local_stack):
    """Another image storage (as the demo instance has): seconds from the per-machine cache, no build."""
    storage = Path(local_stack.state_dir()) / "base-image-test"
    conf = storage / "storage.conf"
    storage.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{storage}/storage"\nrunroot = "{storage}/run"\n')
    name = "localhost/base-image-test:1"
    archive, built = base_image.build()
    assert not built, "the stack's `up` built the cache already; the test must not rebuild it"
    inputs = base_image.recipe(base_image.find_python().identity(), (base_image.REPO / "requirements.txt").read_text())
    try:
        lines: list[str] = []
        started = time.monotonic()
        status = base_image.ensure_image(conf, name, log=lines.append)
        seconds = time.monotonic() - started
        print(f"warm import into a new storage: {seconds:.1f} s")
        assert status.startswith("imported in"), status
        assert lines == [], "nothing was built"
        assert seconds < 120
        assert base_image.imported_key(conf, name)[1] == base_image.cache_key(inputs)
        assert base_image.ensure_image(conf, name).startswith("reused")

        # An image of an older recipe under the same name (the label carries the recipe key) is replaced.
        base_image.import_archive(archive, conf, name, "0000000000000000", inputs["config"])
        stale_id = base_image.imported_key(conf, name)[0]
        assert base_image.ensure_image(conf, name, log=lines.append).startswith("imported in")
        image_id, key = base_image.imported_key(conf, name)
        assert key == base_image.cache_key(inputs) and image_id != stale_id and lines == []
        assert containers(conf, "image", "exists", stale_id, tool="podman", check=False).returncode != 0
    finally:
        containers(conf, "rmi", "--all", "--force", tool="podman", check=False)
        # The overlay driver may keep its folder bind-mounted (see local_stack.py clean).
        for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            if line.split()[1].startswith(f"{storage}/"):
                subprocess.run(["umount", "-l", line.split()[1]], check=False)
        shutil.rmtree(storage, ignore_errors=True)
        assert not storage.exists()
