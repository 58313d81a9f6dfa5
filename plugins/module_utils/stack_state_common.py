# -*- coding: utf-8 -*-
# Apache-2.0
"""Small helpers every stack_state_* reader uses (one copy instead of one per reader)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


def error_code(exc):
    """The AWS error code of a botocore ClientError ("" when the answer has none)."""
    return exc.response.get("Error", {}).get("Code", "")


def json_document(value):
    """A policy or pattern document as a dict, whether the API returned it as JSON text or already parsed."""
    return json.loads(value) if isinstance(value, str) else value


def tag_dict(items):
    """AWS tag list -> dict, without the aws: tags nobody can set (purge_tags leaves them alone too)."""
    return {t["Key"]: t["Value"] for t in items or [] if not t["Key"].startswith("aws:")}
