#!/usr/bin/env bash
# ansible-test sanity for dataops.prefect_fargate (`make sanity`, run by `make lint`).
#
# ansible-test wants the collection at .../ansible_collections/<namespace>/<name> and lists files with
# git; the committed .collections symlink resolves to the repo root, which it refuses. So the
# collection's files (tracked plus new, not ignored) are copied to
# .cache/ansible_collections/dataops/prefect_fargate, a throwaway git repo, with the dependencies
# (amazon.aws, community.aws) linked next to it from the venv's ansible package.
#
# Scope: the collection (plugins, roles, playbooks, meta, docs, tests/unit, tests/sanity). Not the
# flow application (flow_app/, its own package and image), the local-stack tooling (scripts/), the
# benchmarks and the pytest/molecule suites (tests/integration, tests/molecule, tests/helpers,
# molecule/): those are not collection content and are checked by the project's own tests and linters.
#
# Python: 3.12 (the controller Python this collection supports and pins; meta/runtime.yml
# requires_ansible >=2.17, whose controllers run 3.10+). Tests that need no network tool run on it
# directly; ansible-test installs the pinned tools of the others (pep8, validate-modules, yamllint,
# ansible-doc, runtime-metadata, pylint) into its own venvs under ~/.ansible/test from the package
# index. Their pip bootstrap script normally comes from a host this network cannot reach:
# tests/sanity/get_pip.py stands in for it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
py="$repo/.venv/bin/python"
root="$repo/.cache/ansible_collections"
dest="$root/dataops/prefect_fargate"
exclude='^(bench|flow_app|scripts|molecule|tests/(integration|molecule|helpers))/'

rm -rf "$root"
mkdir -p "$dest"
cd "$repo"
git ls-files --cached --others --exclude-standard \
  | grep -Ev "$exclude" \
  | while IFS= read -r f; do [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\n' "$f"; done \
  | tar -cf - -T - | tar -xf - -C "$dest"

site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ansible_collections
ln -s "$site/amazon" "$root/amazon"
ln -s "$site/community" "$root/community"

pip_version=$("$py" -c 'from types import SimpleNamespace as N
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(N(version="3.12"))["pip"])')
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$repo/tests/sanity/get_pip.py" "$get_pip"
fi

cd "$dest"
git init -q .
exec "$repo/.venv/bin/ansible-test" sanity --local --python 3.12 --color no "$@"
