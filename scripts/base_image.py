#!/usr/bin/env python3
"""Build the local stack's base image: a real Debian root filesystem with a real Python 3.12 and the
pinned Prefect, standing in for `prefecthq/prefect:<prefect>-python3.12` (nothing can be pulled here).

The official image is python:3.12-slim (Debian bookworm, CPython in /usr/local) plus Prefect, tini
and /opt/prefect/entrypoint.sh. This builder makes the same layout from what this machine reaches
(Debian's packages, PyPI) and what it has (a CPython 3.12 build). Steps, as measured on the 2-core
machine (cold cache, about 70 s in all; see README "Base image" for sizes and times):

1. debian   `mmdebstrap --variant=minbase bookworm` (about 22 s) with python:3.12-slim's runtime
            packages (ca-certificates, netbase, tzdata), tini (Debian's package installs
            /usr/bin/tini, the official image's path) and the shared libraries that the interpreter
            and its extension modules link, found with ldd as docker-library/python's slim
            Dockerfile does (tkinter excluded, as there). The merged-usr hook instead of the
            usrmerge package (which drags in perl), and debian:bookworm-slim's dpkg path excludes
            (docs, man pages, locales): 95 MB.
2. python   a copy of the host's CPython 3.12 (a pyenv build here: --enable-shared, built on this
            same Debian 12 against the same libraries) into /usr/local. Measured: sys.prefix is
            computed from the executable's location, so the copy is relocatable; what still names
            the build prefix is fixed: RUNPATH (patchelf: `$ORIGIN/../lib` on the interpreter as in
            the official image, removed elsewhere; ldconfig finds libpython in /usr/local/lib), the
            prefix in sysconfigdata, the config Makefile, pkg-config files, python-config and the
            scripts' shebangs. Binaries are stripped (the official build links with --strip-all).
            Nothing of the host's site-packages is copied. As in the official image: no test
            suites, no stdlib .pyc, no libpython.a. Then every extension module is imported inside
            the root filesystem, so a missing shared library fails the build here.
            No other Python 3.12 is reachable offline: Debian 12 has 3.11 only, python.org's
            sources and python-build-standalone are not on PyPI or Debian's mirrors.
3. pip      inside the root filesystem with chroot, in a private mount namespace (so nothing stays
            mounted when the step ends): /proc, the host's /etc/hosts and /etc/resolv.conf, and the
            host's CA bundle over the image's during this step only. ensurepip, pip==PIP_VERSION, then
            prefect==<pin> constrained to exactly what the repository's requirements.txt locks for it
            (prefect's dependency closure, read from uv's "# via" annotations), `pip check`, and a check
            that nothing unpinned was installed (about 25 s). Why chroot and not the host's pip with
            --target/--prefix: pip inside the image writes correct shebangs, RECORD files and .pyc
            paths with no fix-ups, and the interpreter that will run the code resolves markers and
            wheel tags. The host's pip settings a chroot lacks are passed in: the CA bundle (`cert`)
            and http(s) index settings (index-url, extra-index-url, trusted-host); local find-links
            and file:// indexes are host paths and are not (PyPI has every pin, measured).
4. finish   /opt/prefect/entrypoint.sh, empty /etc/resolv.conf and /etc/hostname (the runtime
            provides them), then `prefect version` through tini and the entrypoint as uid 10001.
5. archive  a tar of the root filesystem in the per-machine cache
            (${XDG_CACHE_HOME:-~/.cache}/prefect-fargate/base-image/<key>.tar), <key> a hash of every
            input (recipe(): Debian suite and packages, the Python build, pip, the pins, the
            entrypoint, the image config and RECIPE_VERSION, bumped when the steps change).

Importing (ensure_image) is `podman import` of that tar with the image config (ENV, WORKDIR,
ENTRYPOINT) into the image storage a containers-storage.conf names: about 15 s, no rebuild. The
imported image carries the key as a label, so a changed recipe is re-imported under the same name.

Needs root (mmdebstrap, chroot, mount), mmdebstrap and patchelf (scripts/system_deps.sh), and a
relocatable CPython 3.12 (LOCAL_BASE_PYTHON=/path/to/bin/python3.12, else the newest pyenv 3.12.N).

Usage: base_image.py key | build [--rebuild] | import --storage-conf PATH [--name NAME] | ca --dest PATH
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Bump when the build steps change in a way the other recipe fields do not show.
RECIPE_VERSION = 1
SUITE = "bookworm"
# python:3.12-slim's runtime packages, tini, and the libraries the CPython build links (ldd of the
# interpreter and lib-dynload/*.so without _tkinter, mapped to packages with dpkg -S).
PACKAGES = (
    "ca-certificates", "netbase", "tzdata", "tini",
    "libbz2-1.0", "libcrypt1", "libffi8", "libgssapi-krb5-2", "liblzma5", "libncursesw6", "libnsl2",
    "libreadline8", "libsqlite3-0", "libssl3", "libtinfo6", "libtirpc3", "libuuid1", "zlib1g",
)
# debian:bookworm-slim's dpkg filter.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*", "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/lintian/*",
)
PIP_VERSION = "26.3"
PREFIX = "/usr/local"
PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
ENTRYPOINT = ["/usr/bin/tini", "-g", "--", "/opt/prefect/entrypoint.sh"]
KEY_LABEL = "io.github.dataops.prefect-fargate.base-key"
# The official image's entrypoint contract: install $EXTRA_PIP_PACKAGES, then run the command.
ENTRYPOINT_SH = """\
#!/usr/bin/env bash
# Entrypoint of the local stand-in for prefecthq/prefect (scripts/base_image.py): install
# $EXTRA_PIP_PACKAGES when set (with pip: this image has no uv), then run the command; without one,
# a login shell, as the official image does.
set -e
if [ -f ~/.bashrc ]; then
  . ~/.bashrc
fi
if [ -n "$EXTRA_PIP_PACKAGES" ]; then
  echo "+pip install $EXTRA_PIP_PACKAGES"
  pip install $EXTRA_PIP_PACKAGES
fi
if [ $# -eq 0 ]; then
  exec bash --login
fi
exec "$@"
"""
# Runs a command chrooted into a root filesystem, inside `unshare --mount --propagation private`: the
# mounts live only as long as the command. Arguments: ROOT CA(-: no network, "": network without a
# CA bundle) USERSPEC(-: root) COMMAND...
_CHROOT_SH = r"""
set -eu
root=$1 ca=$2 user=$3
shift 3
mount -t proc proc "$root/proc"
if [ "$ca" != - ]; then
  mount --bind /etc/hosts "$root/etc/hosts"
  mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
  if [ -n "$ca" ]; then mount --bind -o ro "$ca" "$root/etc/ssl/certs/ca-certificates.crt"; fi
fi
if [ "$user" = - ]; then exec chroot "$root" "$@"; fi
exec chroot --userspec="$user" "$root" "$@"
"""


class BaseImageError(RuntimeError):
    """The base image cannot be built or imported; the message says why and what to do."""


# ------------------------------------------------------------------------------------------- inputs
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_closure(requirements_txt: str, root: str = "prefect") -> list[str]:
    """`name==version` of `root` and everything it needs, as a `uv pip compile` lock file pins them.

    Read from the lock's annotations: a package listed with `# via X` (or `# via` and `#   X` lines)
    is required by X, so the closure grows until no pinned package is required by one inside it.
    """
    pins: dict[str, str] = {}
    required_by: dict[str, set[str]] = {}
    current = None
    for line in requirements_txt.splitlines():
        stripped = line.strip()
        if match := _PIN.match(line):
            current = _norm(match.group(1))
            pins[current] = f"{current}=={match.group(2)}"
            required_by[current] = set()
        elif current and stripped.startswith("# via"):
            first = stripped[len("# via"):].strip()
            if first:
                required_by[current].add(_norm(first.split()[0]))
        elif current and stripped.startswith("#   "):
            required_by[current].add(_norm(stripped[4:].split()[0]))
        elif not stripped.startswith("#"):
            current = None
    if _norm(root) not in pins:
        raise BaseImageError(f"{root} is not pinned (name==version) in requirements.txt")
    closure = {_norm(root)}
    grew = True
    while grew:
        grew = False
        for name, parents in required_by.items():
            if name not in closure and parents & closure:
                closure.add(name)
                grew = True
    return sorted(pins[name] for name in closure)


@dataclass(frozen=True)
class HostPython:
    """A CPython 3.12 installation on this machine that is copied into the image's /usr/local."""

    prefix: Path
    version: str

    @property
    def executable(self) -> Path:
        return self.prefix / "bin" / "python3.12"

    def identity(self) -> dict[str, str]:
        """Version and sha256 of the interpreter and libpython: a rebuilt Python is a new input."""
        digest = hashlib.sha256()
        for path in (self.executable, *sorted(self.prefix.glob("lib/libpython3.12.so*"))):
            if path.is_file() and not path.is_symlink():
                digest.update(path.read_bytes())
        return {"version": self.version, "sha256": digest.hexdigest()}


def _probe_python(executable: Path) -> HostPython | None:
    code = "import json, sys; print(json.dumps([sys.version_info[:3], sys.prefix, sys.base_prefix]))"
    try:
        out = subprocess.run([str(executable), "-I", "-c", code], capture_output=True, text=True, timeout=30, check=True)
        (major, minor, micro), prefix, base_prefix = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    prefix_path = Path(prefix).resolve()
    # A venv, or a distribution's Python (prefix /usr, Debian's dist-packages layout), is not relocatable.
    if (major, minor) != (3, 12) or prefix != base_prefix or str(prefix_path) in ("/", "/usr"):
        return None
    if not (prefix_path / "lib" / "python3.12" / "os.py").is_file():
        return None
    return HostPython(prefix_path, f"{major}.{minor}.{micro}")


def find_python() -> HostPython:
    """LOCAL_BASE_PYTHON, else the newest pyenv CPython 3.12.N."""
    if explicit := os.environ.get("LOCAL_BASE_PYTHON"):
        found = _probe_python(Path(explicit))
        if not found:
            raise BaseImageError(f"LOCAL_BASE_PYTHON={explicit} is not a relocatable CPython 3.12 "
                                 "(its own prefix, not /usr, not a venv)")
        return found
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    versions = sorted((p for p in root.glob("3.12.*") if re.fullmatch(r"3\.12\.\d+", p.name)),
                      key=lambda p: int(p.name.rsplit(".", 1)[1]), reverse=True)
    for prefix in versions:
        if found := _probe_python(prefix / "bin" / "python3.12"):
            return found
    raise BaseImageError(f"no CPython 3.12 to copy into the image: none under {root}; "
                         "set LOCAL_BASE_PYTHON=/path/to/bin/python3.12 (a relocatable build, e.g. pyenv's)")


def image_config(prefect_version: str, python_version: str) -> dict:
    """The image config podman import applies: the official image's ENV, WORKDIR and ENTRYPOINT.

    No CMD: in the official image ENTRYPOINT resets python:3.12-slim's CMD, and entrypoint.sh runs a
    login shell when no command is given.
    """
    return {
        "Env": [f"PATH={PATH}", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", f"PYTHON_VERSION={python_version}"],
        "WorkingDir": "/opt/prefect",
        "Entrypoint": ENTRYPOINT,
        "Labels": {
            "org.opencontainers.image.title": "prefect base (local stand-in)",
            "org.opencontainers.image.description": f"Debian {SUITE}, CPython {python_version} in /usr/local, "
                                                    f"prefect=={prefect_version}, tini; built by scripts/base_image.py",
            "io.prefect.python-version": python_version.rsplit(".", 1)[0],
        },
    }


def recipe(python: dict, requirements_txt: str) -> dict:
    """Every input of the image; the cache key is a hash of this."""
    pins = locked_closure(requirements_txt)
    prefect = next(p.split("==", 1)[1] for p in pins if p.startswith("prefect=="))
    return {
        "recipe_version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": "minbase",
        "packages": sorted(PACKAGES),
        "dpkg": list(DPKG_EXCLUDES),
        "python": python,
        "pip": PIP_VERSION,
        "requirements": pins,
        "entrypoint_sh": ENTRYPOINT_SH,
        "config": image_config(prefect, python["version"]),
    }


def cache_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(explicit: Path | None = None) -> Path:
    base = explicit or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prefect-fargate"
    return base / "base-image"


# --------------------------------------------------------------------------------- pip settings
def host_pip_settings(python: HostPython) -> dict[str, str]:
    """The host's effective pip settings (config files and PIP_* variables), as `pip config list` shows them."""
    try:
        out = subprocess.run([str(python.executable), "-m", "pip", "config", "list"], capture_output=True,
                             text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_pip_config_list(out)


def parse_pip_config_list(out: str) -> dict[str, str]:
    found: dict[tuple[str, str], str] = {}
    for line in out.splitlines():  # section.key='value': global.cert='/etc/ssl/...', :env:.cert='...'
        if match := re.match(r"^(:env:|[a-z]+)\.([a-z-]+)='(.*)'$", line.strip()):
            found[match.group(1), match.group(2)] = match.group(3)
    settings: dict[str, str] = {}
    for section in ("global", "install", ":env:"):  # PIP_* variables win, then [install], then [global]
        settings.update({key: value for (sec, key), value in found.items() if sec == section})
    return settings


def host_ca_bundle(settings: dict[str, str]) -> Path | None:
    """The CA bundle the host's pip trusts: its `cert` setting, else the system's default bundle."""
    candidates = [settings.get("cert"), os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"),
                  ssl.get_default_verify_paths().cafile, ssl.get_default_verify_paths().openssl_cafile]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def pip_env(settings: dict[str, str], with_ca: bool) -> dict[str, str]:
    """PIP_* variables for pip inside the root filesystem: the CA bundle and the http(s) index settings."""
    env = {"PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
           "PIP_ROOT_USER_ACTION": "ignore"}
    if with_ca:
        env["PIP_CERT"] = "/etc/ssl/certs/ca-certificates.crt"
    remote = [u for u in settings.get("index-url", "").split() if u.startswith(("http://", "https://"))]
    if remote:
        env["PIP_INDEX_URL"] = remote[0]
    extra = [u for u in settings.get("extra-index-url", "").split() if u.startswith(("http://", "https://"))]
    if extra:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(extra)
    for key in ("trusted-host", "default-timeout", "timeout", "retries"):
        if settings.get(key):
            env["PIP_" + key.upper().replace("-", "_")] = settings[key]
    return env


def write_build_ca(dest: Path) -> Path:
    """Copy the CA bundle the host's pip trusts to dest (for RUN steps of image builds: ecr_image_build_volumes)."""
    bundle = host_ca_bundle(host_pip_settings(find_python()))
    if not bundle:
        raise BaseImageError("no CA bundle found on this host (pip's `cert`, SSL_CERT_FILE, or OpenSSL's default)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(bundle, tmp)
    tmp.chmod(0o644)
    tmp.replace(dest)
    return dest


# ------------------------------------------------------------------------------------------- build
def _run(argv: list[str], log: Path, **kwargs) -> subprocess.CompletedProcess:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BaseImageError(f"{argv[0]} failed (exit {result.returncode}); last lines of {log}:\n{tail}")
    return result


def _chroot(root: Path, argv: list[str], log: Path, *, env: dict[str, str], ca: Path | None | str = "-",
            user: str = "-", capture: bool = False) -> str:
    """Run argv in root (chroot, private mounts). ca: "-" no network; None network with the image's CAs; a path: that bundle."""
    base_env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    command = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in {**base_env, **env}.items()), *argv]
    full = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _CHROOT_SH, "sh", str(root),
            "" if ca is None else str(ca), user, *command]
    if capture:
        result = subprocess.run(full, capture_output=True, text=True)
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            raise BaseImageError(f"{' '.join(argv)} failed in the image (exit {result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout
    _run(full, log)
    return ""


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _copy_python(python: HostPython, root: Path, log: Path) -> None:
    """Copy the interpreter to root/usr/local and make it a /usr/local installation."""
    dest = root / PREFIX.lstrip("/")
    stdlib = python.prefix / "lib" / "python3.12"

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skipped = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))
                   or (n.startswith("libpython") and n.endswith(".a"))}
        if here.is_relative_to(stdlib):
            skipped |= {n for n in names if n in ("test", "tests", "idle_test")}
        if here == stdlib / "site-packages":
            skipped |= {n for n in names if n != "README.txt"}  # pip comes from ensurepip
        if here == python.prefix / "bin":
            skipped |= {n for n in names if n.startswith("pip")}
        return skipped

    shutil.copytree(python.prefix, dest, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    old = str(python.prefix).encode()
    for path in dest.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        if _is_elf(path):
            runpath = subprocess.run(["patchelf", "--print-rpath", str(path)], capture_output=True, text=True).stdout.strip()
            if path == dest / "bin" / "python3.12":
                _run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(path)], log)
            elif runpath:
                _run(["patchelf", "--remove-rpath", str(path)], log)
            _run(["strip", "--strip-unneeded", str(path)], log)  # as the official build's --strip-all: 30 MB less
            continue
        data = path.read_bytes()
        if old in data:  # shebangs, sysconfigdata, the config Makefile, *.pc, python-config
            path.write_bytes(data.replace(old, PREFIX.encode()))
    _chroot(root, ["/sbin/ldconfig"], log, env={})
    # Every extension module must load: a missing shared library fails here, not in a flow run.
    check = ("import importlib, pathlib, sys; bad = []\n"
             "for so in sorted(pathlib.Path(sys.prefix, 'lib/python3.12/lib-dynload').glob('*.so')):\n"
             "    name = so.name.split('.')[0]\n"
             "    if name == '_tkinter': continue\n"
             "    try: importlib.import_module(name)\n"
             "    except ImportError as exc: bad.append(f'{name}: {exc}')\n"
             "print(sys.prefix); print('\\n'.join(bad)); sys.exit(1 if bad else 0)")
    out = _chroot(root, ["python3.12", "-c", check], log, env={}, capture=True)
    if out.splitlines()[0] != PREFIX:
        raise BaseImageError(f"the copied Python reports sys.prefix {out.splitlines()[0]!r}, not {PREFIX}")


def _install_prefect(root: Path, pins: list[str], settings: dict[str, str], log: Path) -> int:
    ca = host_ca_bundle(settings)
    env = pip_env(settings, with_ca=ca is not None)
    constraints = root / "tmp" / "base-constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    prefect = next(p for p in pins if p.startswith("prefect=="))
    try:
        _chroot(root, ["python3.12", "-m", "ensurepip", "--default-pip"], log, env=env, ca=ca)
        _chroot(root, ["python3", "-m", "pip", "install", f"pip=={PIP_VERSION}"], log, env=env, ca=ca)
        _chroot(root, ["python3", "-m", "pip", "install", "--constraint", "/tmp/base-constraints.txt", prefect],
                log, env=env, ca=ca)
    finally:
        constraints.unlink(missing_ok=True)
    _chroot(root, ["python3", "-m", "pip", "check"], log, env=env)
    listed = json.loads(_chroot(root, ["python3", "-m", "pip", "list", "--format=json"], log, env=env, capture=True))
    installed = {f"{_norm(p['name'])}=={p['version']}" for p in listed}
    unpinned = sorted(installed - set(pins) - {f"pip=={PIP_VERSION}"})
    if unpinned:
        raise BaseImageError(f"installed but not pinned by requirements.txt for prefect: {', '.join(unpinned)}")
    return len(installed)


def _finish(root: Path, prefect_version: str, log: Path) -> None:
    entrypoint = root / "opt" / "prefect" / "entrypoint.sh"
    entrypoint.parent.mkdir(parents=True, exist_ok=True)
    entrypoint.write_text(ENTRYPOINT_SH)
    entrypoint.chmod(0o755)
    for name in ("resolv.conf", "hostname"):  # mmdebstrap copied the host's; a runtime provides them
        (root / "etc" / name).write_text("")
        (root / "etc" / name).chmod(0o644)
    for cache in (root / "usr/local/lib/python3.12").rglob("__pycache__"):
        if "site-packages" not in cache.parts:
            shutil.rmtree(cache)
    # The official image's start path, as the flow image's non-root user (nothing may need writing).
    out = _chroot(root, [*ENTRYPOINT, "prefect", "version"], log, user="10001:10001", capture=True,
                  env={"HOME": "/tmp", "TINI_SUBREAPER": "1"})
    if not re.search(rf"^Version:\s+{re.escape(prefect_version)}$", out, re.M):
        raise BaseImageError(f"`prefect version` in the image did not report {prefect_version}:\n{out}")
    for leftover in (root / "tmp").iterdir():
        shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(prefix)]


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    if mounted := _mounts_under(path):  # never delete through a mount into the host
        raise BaseImageError(f"{path} still has mounts ({', '.join(mounted)}); unmount them, then remove it")
    shutil.rmtree(path)


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise BaseImageError("building the base image needs root (mmdebstrap, chroot, mount); run it as root once, "
                             "later runs only import the cached archive")
    missing = [tool for tool in ("mmdebstrap", "patchelf", "strip", "unshare", "chroot", "tar") if not shutil.which(tool)]
    if missing:
        raise BaseImageError(f"missing {', '.join(missing)}: run `make system-deps` (scripts/system_deps.sh)")


@contextlib.contextmanager
def _locked(cache: Path):
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make up` (other instance) waits, then reuses
        yield


def build(cache_dir: Path | None = None, rebuild: bool = False, log: Callable[[str], None] = print) -> tuple[Path, bool]:
    """The cached root filesystem archive of the current recipe, built when missing. Returns (path, built)."""
    python = find_python()
    requirements = (REPO / "requirements.txt").read_text()
    inputs = recipe(python.identity(), requirements)
    key = cache_key(inputs)
    cache = cache_root(cache_dir)
    archive = cache / f"{key}.tar"
    with _locked(cache):
        if archive.is_file() and not rebuild:
            os.utime(archive)
            return archive, False
        _check_prerequisites()
        work, logfile = cache / f"build-{key}", cache / f"build-{key}.log"
        _remove_tree(work)
        work.mkdir(parents=True)
        logfile.write_text(f"base image {key}\n{json.dumps(inputs, indent=2, sort_keys=True)}\n")
        root = work / "rootfs"
        settings = host_pip_settings(python)
        prefect_version = next(p.split("==")[1] for p in inputs["requirements"] if p.startswith("prefect=="))
        started = time.monotonic()
        steps: list[tuple[str, Callable[[], str]]] = [
            (f"debian {SUITE} minbase + {len(PACKAGES)} packages (mmdebstrap)", lambda: _debian(root, logfile)),
            (f"python {python.version} from {python.prefix} -> {PREFIX}", lambda: _copy_python(python, root, logfile)),
            (f"pip {PIP_VERSION} + prefect {prefect_version}, {len(inputs['requirements'])} pins",
             lambda: f"{_install_prefect(root, inputs['requirements'], settings, logfile)} packages"),
            ("entrypoint + smoke test (prefect version as uid 10001)", lambda: _finish(root, prefect_version, logfile)),
            (f"archive {archive.name}", lambda: _archive(root, archive)),
        ]
        try:
            for number, (label, step) in enumerate(steps, 1):
                log(f"  base image [{number}/{len(steps)}] {label} ...")
                step_started = time.monotonic()
                detail = step()
                log(f"  base image [{number}/{len(steps)}] done in {time.monotonic() - step_started:.1f} s"
                    + (f" ({detail})" if detail else ""))
            size = archive.stat().st_size
            (cache / f"{key}.json").write_text(json.dumps(
                {"key": key, "recipe": inputs, "build_seconds": round(time.monotonic() - started, 1),
                 "archive_bytes": size, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2, sort_keys=True))
            log(f"  base image built in {time.monotonic() - started:.0f} s: {archive} ({size / 1e6:.0f} MB)")
        finally:
            _remove_tree(work)
        _prune(cache, keep=3)
        logfile.unlink(missing_ok=True)
        return archive, True


def _debian(root: Path, log: Path) -> str:
    _run(["mmdebstrap", "--variant=minbase", "--mode=root", "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
          *(f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES), f"--include={','.join(PACKAGES)}", SUITE, str(root)], log)
    return ""


def _archive(root: Path, archive: Path) -> str:
    tmp = archive.with_name(archive.name + ".tmp")
    # Device nodes, /proc and /sys contents come from the runtime, as in every container image.
    subprocess.run(["tar", "--create", "--file", str(tmp), "--directory", str(root), "--numeric-owner", "--sort=name",
                    "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "."], check=True)
    tmp.replace(archive)
    return f"{archive.stat().st_size / 1e6:.0f} MB"


def _prune(cache: Path, keep: int) -> None:
    """Keep the `keep` most recently used archives (another checkout may use an older recipe)."""
    archives = sorted(cache.glob("*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ import
def _podman(storage_conf: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    podman = shutil.which("podman")
    if not podman:
        raise BaseImageError("podman is not installed: run `make system-deps`")
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage_conf)}
    return subprocess.run([podman, *args], env=env, capture_output=True, text=True, check=check)


def imported_key(storage_conf: Path, name: str) -> tuple[str, str] | None:
    """(image id, recipe key label) of `name` in that storage, or None when it is not there."""
    found = _podman(storage_conf, "image", "inspect", name, check=False)
    if found.returncode != 0:
        return None
    image = json.loads(found.stdout)[0]
    return image["Id"], (image.get("Labels") or {}).get(KEY_LABEL, "")


def import_archive(archive: Path, storage_conf: Path, name: str, key: str, config: dict) -> None:
    changes = [f"ENV {item}" for item in config["Env"]]
    changes += [f"WORKDIR {config['WorkingDir']}", f"ENTRYPOINT {json.dumps(config['Entrypoint'])}"]
    changes += [f"LABEL {k}={json.dumps(v)}" for k, v in {**config["Labels"], KEY_LABEL: key}.items()]
    _podman(storage_conf, "import", "--quiet", *(arg for change in changes for arg in ("--change", change)),
            str(archive), name)


def ensure_image(storage_conf: Path, name: str, cache_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> str:
    """Make `name` in the storage of storage_conf the base image of the current recipe.

    Reused when the imported image carries the current key; else imported from the per-machine cache
    (built first when the cache does not have it). Returns what happened, for `make up`'s status line.
    """
    python = find_python()
    inputs = recipe(python.identity(), (REPO / "requirements.txt").read_text())
    key = cache_key(inputs)
    current = imported_key(storage_conf, name)
    if current and current[1] == key:
        return f"reused ({key})"
    started = time.monotonic()
    archive, built = build(cache_dir, log=log)
    built_seconds = time.monotonic() - started
    started = time.monotonic()
    import_archive(archive, storage_conf, name, key, inputs["config"])
    if current:  # the image of an older recipe: drop it unless a container or a build still uses it
        _podman(storage_conf, "rmi", current[0], check=False)
    imported = f"imported in {time.monotonic() - started:.0f} s ({key})"
    return f"built in {built_seconds:.0f} s, {imported}" if built else imported


def default_name(requirements_txt: str | None = None) -> str:
    pins = locked_closure(requirements_txt or (REPO / "requirements.txt").read_text())
    prefect = next(p.split("==")[1] for p in pins if p.startswith("prefect=="))
    return f"localhost/prefect-base:{prefect}-python3.12"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, help="default: ${XDG_CACHE_HOME:-~/.cache}/prefect-fargate")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("key", help="print the cache key and the recipe")
    build_cmd = sub.add_parser("build", help="build into the cache unless it is there (prints the archive)")
    build_cmd.add_argument("--rebuild", action="store_true")
    import_cmd = sub.add_parser("import", help="import into the storage of a containers-storage.conf")
    import_cmd.add_argument("--storage-conf", type=Path, required=True)
    import_cmd.add_argument("--name", default=os.environ.get("LOCAL_BASE_IMAGE") or default_name())
    ca_cmd = sub.add_parser("ca", help="copy the CA bundle the host's pip trusts (for image builds)")
    ca_cmd.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    try:
        if args.command == "key":
            inputs = recipe(find_python().identity(), (REPO / "requirements.txt").read_text())
            print(cache_key(inputs))
            print(json.dumps(inputs, indent=2, sort_keys=True))
        elif args.command == "build":
            print(build(args.cache_dir, rebuild=args.rebuild)[0])
        elif args.command == "import":
            print(ensure_image(args.storage_conf, args.name, args.cache_dir))
        else:
            print(write_build_ca(args.dest))
    except BaseImageError as err:
        sys.exit(f"base-image: {err}")


if __name__ == "__main__":
    main()
