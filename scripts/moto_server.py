#!/usr/bin/env python3
"""moto's server with the local stack's patches (scripts/moto_patches.py) applied.

Same command line as moto's own `moto_server` CLI (e.g. `-H 127.0.0.1 -p 5000`): it applies every
patch, drops what an earlier emulator left on the local PostgreSQL server (moto starts empty;
scripts/moto_patches_rds.py), then hands the arguments to `moto.server.main`. scripts/local_stack.py
starts moto through it.

It also serves the Fargate stand-in's private channel to the ECS control plane (not an AWS API, like
moto's own /moto-api/; JSON in, JSON out, never recorded by moto's request recorder):
  POST /_local_stack/fargate/poll    {"tasks": [taskArn held, ...]} -> {"start": [task spec], "stop": [...]}
  POST /_local_stack/fargate/report  {"taskArn", "lastStatus", ...}  -> {"taskArn", "lastStatus", "desiredStatus"}
  POST /_local_stack/fargate/logs    {"taskArn", "container", "events": [{"timestamp", "message"}]}
(moto_patches.fargate_poll / fargate_report / fargate_logs document the fields.)
and the benchmark's switch of the pending delays (scripts/moto_patches_delays.py):
  POST /_local_stack/delays          {"nat": s, "alb": s, "service": s} -> the delays in force
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import moto_patches  # noqa: E402  (the scripts folder is not a package)
import moto_patches_delays  # noqa: E402
import moto_patches_rds  # noqa: E402

CHANNEL_PREFIX = "/_local_stack/fargate/"


def _poll(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, moto_patches.fargate_poll(body)


ROUTES: dict[str, Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]] = {
    "poll": _poll,
    "report": moto_patches.fargate_report,
    "logs": moto_patches.fargate_logs,
    "delays": moto_patches_delays.set_delays,
}
# POST /_local_stack/delays {"nat": s, "alb": s, "service": s}: pending delays of new resources (moto_patches_delays).
DELAYS_PATH = "/_local_stack/delays"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


def fargate_channel(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """WSGI app of the private channel."""
    route = ROUTES.get(environ.get("PATH_INFO", "")[len(CHANNEL_PREFIX):])
    if route is None:
        status, answer = 404, {"message": f"no such route: {environ.get('PATH_INFO')}"}
    elif environ.get("REQUEST_METHOD") != "POST":
        status, answer = 405, {"message": "POST only"}
    else:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            status, answer = route(body)
        except ValueError as err:
            status, answer = 400, {"message": f"not JSON: {err}"}
        except Exception as err:  # noqa: BLE001 - answered, and logged for the stack's moto.log
            traceback.print_exc()
            status, answer = 500, {"message": repr(err)}
    data = json.dumps(answer, default=str).encode()
    start_response(f"{status} {REASONS.get(status, '')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def with_fargate_channel(dispatcher: type) -> type:
    """moto's DomainDispatcherApplication, serving the private channel before the AWS APIs."""

    class LocalStackDispatcher(dispatcher):  # type: ignore[misc,valid-type]
        def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ.get("PATH_INFO", "").startswith(CHANNEL_PREFIX):
                return fargate_channel(environ, start_response)
            if environ.get("PATH_INFO", "") == DELAYS_PATH:
                return fargate_channel({**environ, "PATH_INFO": CHANNEL_PREFIX + "delays"}, start_response)
            return super().__call__(environ, start_response)

    return LocalStackDispatcher


def main(argv: list[str] | None = None) -> None:
    applied = moto_patches.apply_all()
    print(f"moto patches applied: {', '.join(applied)}", file=sys.stderr, flush=True)
    # moto starts empty: what an earlier emulator left on the local PostgreSQL server goes too.
    try:
        dropped = moto_patches_rds.drop_leftovers()
    except moto_patches_rds.LocalPostgresUnavailable as err:
        print(f"moto_patches_rds: {err}", file=sys.stderr, flush=True)
    else:
        if dropped:
            print(f"moto_patches_rds: dropped leftovers {', '.join(dropped)}", file=sys.stderr, flush=True)
    import moto.server

    moto.server.DomainDispatcherApplication = with_fargate_channel(moto.server.DomainDispatcherApplication)
    moto.server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
