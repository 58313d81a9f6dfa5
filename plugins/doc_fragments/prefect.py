# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""Shared documentation of the Prefect API connection options."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the Prefect REST API, including the C(/api) suffix.
      - "Self-hosted: C(https://prefect.example.com/api). Prefect Cloud:
        C(https://api.prefect.cloud/api/accounts/<account_id>/workspaces/<workspace_id>)."
      - Falls back to the E(PREFECT_API_URL) environment variable of the controller.
      - Set it once with play-level C(module_defaults) for C(group/dataops.prefect_fargate.prefect).
    type: str
    required: true
  api_key:
    description:
      - "Prefect Cloud API key, sent as C(Authorization: Bearer <api_key>)."
      - Mutually exclusive with O(auth_string).
    type: str
  auth_string:
    description:
      - "Basic-auth string C(user:password) of a self-hosted Prefect server started with
        E(PREFECT_SERVER_API_AUTH_STRING), sent as C(Authorization: Basic base64(auth_string))
        exactly like the Prefect client does for E(PREFECT_API_AUTH_STRING)."
      - Mutually exclusive with O(api_key).
    type: str
  validate_certs:
    description:
      - Verify the TLS certificate of O(api_url). Only disable it for a test server.
    type: bool
    default: true
  timeout:
    description:
      - Timeout in seconds of each HTTP request.
    type: int
    default: 30
  retries:
    description:
      - How many times a request is retried after a timeout, a connection error, an HTTP 429 or an HTTP 5xx
        answer, with exponential backoff (0.5 s, 1 s, 2 s, ... capped at 8 s; a 429's C(Retry-After) is
        honoured up to the cap). C(0) disables retries. Past the last retry the task fails with a message
        naming the URL, the number of attempts and the time spent.
    type: int
    default: 3
notes:
  - The connection options are the same for every module of the C(dataops.prefect_fargate.prefect)
    action group, so one C(module_defaults) entry configures them all.
"""
