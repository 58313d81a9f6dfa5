"""One configured :mod:`requests` session for every HTTP call the flow makes."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gainers_elt import __version__

USER_AGENT = (
    f"gainers-elt/{__version__} (+https://github.com/dataops/prefect_fargate; "
    f"daily top-gainers snapshot) python-requests/{requests.__version__}"
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def build_session(
    retries: int = 4,
    backoff_factor: float = 0.5,
    backoff_max: float = 30.0,
    max_retry_after: int = 60,
    user_agent: str = USER_AGENT,
) -> requests.Session:
    """A session that retries connection errors, 429 and 5xx with exponential backoff.

    ``Retry-After`` (sent with 429/503) is honoured, capped at ``max_retry_after`` seconds. After the
    last retry the final response is returned as is, so ``raise_for_status()`` reports the real
    status and URL. Only idempotent GET/HEAD requests are retried.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
        # A server may answer "Retry-After: 3600": a batch job should rather fail and be retried
        # by the orchestrator than sleep inside one request for an hour.
        retry_after_max=max_retry_after,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"User-Agent": user_agent, "Accept-Language": "en"})
    return session
