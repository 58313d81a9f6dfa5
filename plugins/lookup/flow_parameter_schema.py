# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
name: flow_parameter_schema
short_description: OpenAPI parameter schema of a Prefect flow, read from its source
version_added: 0.1.0
description:
  - Returns the C(parameter_openapi_schema) Prefect expects for a deployment, derived from the flow
    function's signature and docstring with C(prefect.utilities.callables.parameter_schema_from_entrypoint),
    exactly as C(prefect deploy) does it. The source is parsed, not imported, so the flow's own
    dependencies need not be installed on the controller.
  - Importing Prefect costs about 1 s, on every run. So each schema is kept in a cache folder, keyed by the
    sha256 of every C(.py) file of the entrypoint's folder, the function name and the installed Prefect
    version. Prefect is imported only when one of those changed.
author:
  - Prefect Fargate maintainers (@dataops)
options:
  _terms:
    description: Entrypoints C(<path/to/file.py>:<function>), relative to O(root) unless absolute.
    required: true
    type: list
    elements: str
  root:
    description: Directory relative entrypoints are resolved against (the folder the package lives in).
    type: str
    default: ""
  cache_dir:
    description:
      - Folder of the schema cache. Empty means C($XDG_CACHE_HOME/dataops.prefect_fargate/flow-parameter-schemas),
        C(~/.cache/...) without XDG_CACHE_HOME. A folder that cannot be written only turns the cache off.
    type: str
    default: ""
requirements:
  - prefect (3.x) in the controller's Python
"""

EXAMPLES = r"""
- name: Derive the parameter schema of the ELT flow
  ansible.builtin.set_fact:
    flow_schema: >-
      {{ lookup('dataops.prefect_fargate.flow_parameter_schema',
                'gainers_elt/flow.py:top_gainers_elt', root=playbook_dir ~ '/flow_app') }}
"""

RETURN = r"""
_raw:
  description: One OpenAPI schema (C(type=object), C(properties), C(required), C(definitions)) per entrypoint.
  type: list
  elements: dict
"""

import hashlib
import json
import os
import tempfile
from importlib import metadata

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dataops.prefect_fargate", "flow-parameter-schemas")


def cache_key(path, func):
    """What the schema depends on: the Python files next to the entrypoint (the signature may use their types),
    the function and Prefect's version."""
    try:
        prefect_version = metadata.version("prefect")
    except metadata.PackageNotFoundError:
        prefect_version = "none"
    digest = hashlib.sha256(("%s\0%s\0" % (prefect_version, func)).encode())
    folder = os.path.dirname(os.path.abspath(path))
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            digest.update(name.encode() + b"\0")
            with open(os.path.join(folder, name), "rb") as source:
                digest.update(hashlib.sha256(source.read()).digest())
    digest.update(os.path.basename(path).encode())
    return digest.hexdigest()


def read_cached(cache_dir, key):
    try:
        with open(os.path.join(cache_dir, key + ".json")) as cached:
            return json.load(cached)
    except (OSError, ValueError):
        return None


def write_cached(cache_dir, key, schema):
    try:
        os.makedirs(cache_dir, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(schema, out)
        os.replace(tmp, os.path.join(cache_dir, key + ".json"))  # atomic: a reader never sees half a file
    except OSError:
        pass


def derive_schema(path, func, term):
    try:
        from prefect.utilities.callables import parameter_schema_from_entrypoint
    except ImportError as exc:
        raise AnsibleLookupError(
            "flow_parameter_schema needs prefect in the controller's Python: %s" % exc) from exc
    try:
        schema = parameter_schema_from_entrypoint("%s:%s" % (path, func))
    except Exception as exc:  # a syntax error or a missing function in the flow source
        raise AnsibleLookupError("cannot derive the parameter schema of %s: %s" % (term, exc)) from exc
    # Through JSON, so a derived schema and a cached one are the same value.
    return json.loads(json.dumps(schema.model_dump_for_openapi()))


def schemas(terms, root, cache_dir):
    """One schema per entrypoint term, from the cache or derived."""
    results = []
    for term in terms:
        path, sep, func = str(term).rpartition(":")
        if not sep or not path or not func:
            raise AnsibleLookupError("entrypoint %r is not <file.py>:<function>" % term)
        if not os.path.isabs(path):
            path = os.path.join(root, path)
        if not os.path.isfile(path):
            raise AnsibleLookupError("entrypoint %r: %s does not exist" % (term, path))
        key = cache_key(path, func)
        schema = read_cached(cache_dir, key)
        if schema is None:
            schema = derive_schema(path, func, term)
            write_cached(cache_dir, key, schema)
        results.append(schema)
    return results


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return schemas(terms, self.get_option("root"), self.get_option("cache_dir") or default_cache_dir())
