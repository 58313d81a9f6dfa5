#!/usr/bin/env python3
"""moto's server with the local stack's patches (scripts/moto_patches.py) applied.

Same command line as moto's own `moto_server` CLI (e.g. `-H 127.0.0.1 -p 5000`): it applies every
patch, then hands the arguments to `moto.server.main`. scripts/local_stack.py starts moto through it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import moto_patches  # noqa: E402  (the scripts folder is not a package)


def main(argv: list[str] | None = None) -> None:
    applied = moto_patches.apply_all()
    print(f"moto patches applied: {', '.join(applied)}", file=sys.stderr, flush=True)
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
