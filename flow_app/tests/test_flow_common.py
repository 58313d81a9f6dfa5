"""flow_common, the package both flows share (their task-retry rule): both flows use it, and the image carries it
(the flow packages pulled at run time do not)."""

from __future__ import annotations

import re
from pathlib import Path

import botocore.exceptions
import yaml

import flow_common
from gainers_digest import flow as digest_flow
from gainers_elt import flow as elt_flow

FLOW_APP = Path(__file__).resolve().parents[1]
REPO = FLOW_APP.parent
PACKAGE_FILES = sorted(p.relative_to(FLOW_APP).as_posix() for p in (FLOW_APP / "flow_common").rglob("*.py"))


def test_both_flows_retry_with_the_shared_rule_and_define_none_of_their_own():
    for io_task in (digest_flow.list_source_keys, elt_flow.load_to_s3):
        assert io_task.retries == 2 and io_task.retry_condition_fn is flow_common.retry_on_io
    for module in (digest_flow, elt_flow):
        source = Path(module.__file__).read_text()
        assert "def is_transient" not in source and "def retry_on_io" not in source, module.__file__


def test_s3_throttling_is_transient_and_access_denied_is_not():
    def error(code, status):
        return botocore.exceptions.ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2")

    assert flow_common.is_transient(error("SlowDown", 503)) and flow_common.is_transient(error("Throttling", 400))
    assert not flow_common.is_transient(error("AccessDenied", 403))


def test_the_image_carries_the_package_and_its_hash_covers_it():
    """A flow-run task pulls only its own package: flow_common must be in the image, and every file of it part of
    the build context (the ecr_image role's ecr_image_context_files) so a change of it builds a new image."""
    dockerfile = (FLOW_APP / "Dockerfile").read_text()
    assert re.search(r"--mount=type=bind,source=flow_common,target=", dockerfile), "Dockerfile must install flow_common"
    context = yaml.safe_load((REPO / "roles/ecr_image/defaults/main.yml").read_text())["ecr_image_context_files"]
    assert "requirements.txt" in context and set(PACKAGE_FILES) <= set(context), (PACKAGE_FILES, context)
    assert {"!" + name for name in PACKAGE_FILES} <= set((FLOW_APP / ".dockerignore").read_text().split())
