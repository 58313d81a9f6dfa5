# -*- coding: utf-8 -*-
# Apache-2.0
"""Small helpers every stack_state_* reader uses (one copy instead of one per reader)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from concurrent.futures import ThreadPoolExecutor


def error_code(exc):
    """The AWS error code of a botocore ClientError ("" when the answer has none)."""
    return exc.response.get("Error", {}).get("Code", "")


def json_document(value):
    """A policy or pattern document as a dict, whether the API returned it as JSON text or already parsed."""
    return json.loads(value) if isinstance(value, str) else value


def tag_dict(items):
    """AWS tag list -> dict, without the aws: tags nobody can set (purge_tags leaves them alone too)."""
    return {t["Key"]: t["Value"] for t in items or [] if not t["Key"].startswith("aws:")}


def in_parallel(function, items, workers=4):
    """[function(item) for item in items], with up to `workers` calls at once; the first exception is raised.

    A reader's calls for independent resources each wait a round trip to AWS (tens of milliseconds, more from
    far away): overlapping them is what makes one read of many resources cheap. boto3 clients are
    thread-safe; create them before, not inside, `function` (a session is not). A few at once stays well
    under the read APIs' rate limits, and AWSRetry retries a throttled call.
    """
    items = list(items)
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(function, items))


def read_all(reads, workers=8):
    """{name: read()} for a mapping of names to reads of independent resources, overlapped (in_parallel)."""
    return dict(zip(reads, in_parallel(lambda read: read(), list(reads.values()), workers)))
