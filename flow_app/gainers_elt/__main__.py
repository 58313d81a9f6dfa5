"""Run the flow once, locally: ``python -m gainers_elt --results-bucket BUCKET [options]``.

Options mirror the flow's parameters (``--source-url``, ``--fx-api-url``, ``--target-currency``,
``--fx-rate``, ``--results-prefix``, ...). Prefect reports the run to ``PREFECT_API_URL`` when set
(otherwise to a temporary local server); S3 credentials come from boto3's default chain
(``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL`` for an emulator).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import typing
from decimal import Decimal

from prefect.utilities.callables import parameter_docstrings

from gainers_elt.flow import top_gainers_elt

_TYPES = {str: str, int: int, float: float, Decimal: Decimal}


def _arg_type(annotation: object) -> type:
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return _TYPES[options[0]]


def build_parser() -> argparse.ArgumentParser:
    """One ``--kebab-case`` option per flow parameter, typed and documented from the flow itself."""
    parser = argparse.ArgumentParser(prog="python -m gainers_elt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(top_gainers_elt.fn)
    docs = parameter_docstrings(inspect.getdoc(top_gainers_elt.fn))
    for name, param in inspect.signature(top_gainers_elt.fn).parameters.items():
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=_arg_type(hints[name]), required=required, default=default,
            help=f"{docs.get(name, '')} (default: {default})" if not required else docs.get(name, ""),
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    try:
        result = top_gainers_elt(**args)
    except Exception as exc:  # noqa: BLE001 - Prefect has logged the traceback; say what failed and exit 1
        print(f"top-gainers-elt failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
