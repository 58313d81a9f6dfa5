"""What every flow of flow_app shares: which errors are worth a task retry.

Installed in the flow image (flow_app/Dockerfile copies this package into site-packages), so a flow package pulled
from the flow-storage bucket imports it like any dependency (``from flow_common import retry_on_io``); locally and in
the tests, flow_app/ on ``sys.path`` finds it next to the flow packages. A change of this package changes the image's
content hash (the ecr_image role's ``ecr_image_context_files`` lists its files).
"""

from __future__ import annotations

import botocore.exceptions
import requests

__all__ = ["is_transient", "retry_on_io"]

# S3 error codes that mean "try again later", whatever the HTTP status says.
_RETRY_CODES = frozenset({"SlowDown", "Throttling", "RequestTimeout", "InternalError"})


def is_transient(exc: BaseException) -> bool:
    """True for I/O failures worth retrying: connection errors, timeouts, 429, 5xx, S3 throttling."""
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else None
        return status is None or status == 429 or status >= 500
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or error.get("Code") in _RETRY_CODES
    return False


def retry_on_io(task, task_run, state) -> bool:  # noqa: ANN001 (Prefect's retry_condition_fn signature)
    """Prefect ``retry_condition_fn``: retry only transient I/O errors, never a bad page or bad input."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classify whatever the task raised
        return is_transient(exc)
    return False
