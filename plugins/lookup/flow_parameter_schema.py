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

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        root = self.get_option("root")
        try:
            from prefect.utilities.callables import parameter_schema_from_entrypoint
        except ImportError as exc:
            raise AnsibleLookupError(
                "flow_parameter_schema needs prefect in the controller's Python: %s" % exc) from exc
        results = []
        for term in terms:
            path, sep, func = str(term).rpartition(":")
            if not sep or not path or not func:
                raise AnsibleLookupError("entrypoint %r is not <file.py>:<function>" % term)
            if not os.path.isabs(path):
                path = os.path.join(root, path)
            if not os.path.isfile(path):
                raise AnsibleLookupError("entrypoint %r: %s does not exist" % (term, path))
            try:
                schema = parameter_schema_from_entrypoint("%s:%s" % (path, func))
            except Exception as exc:  # a syntax error or a missing function in the flow source
                raise AnsibleLookupError("cannot derive the parameter schema of %s: %s" % (term, exc)) from exc
            results.append(schema.model_dump_for_openapi())
        return results
