"""Parse the number formats CoinMarketCap prints, exactly, into :class:`~decimal.Decimal`.

Handled (with or without a leading ``$``, spaces, thousands separators):

* plain amounts ``$1,234.56``, ``$0.000123``, ``98765``
* subscript-zero notation for tiny prices: ``$0.0₄5123`` means the ``0`` before the subscript is
  repeated 4 times, i.e. ``0.00005123`` (``<sub>4</sub>`` markup is turned into ``₄`` by the parser)
* suffixed amounts ``$567.8K``, ``$3.4M``, ``$12.34B``, ``$1.2T``
* percentages ``12.34%``, ``+1.2%``, ``-3%``, ``−3.4%`` (unicode minus), ``▲ 5%``/``▼ 5%`` arrows
* "no data" markers ``--``, ``-``, ``—``, ``N/A`` (only where the caller allows missing values)

Nothing here uses floats: every value is built from its decimal string.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["NumberFormatError", "is_missing", "parse_amount", "parse_percent", "parse_rank"]

SUBSCRIPT_DIGITS = "₀₁₂₃₄₅₆₇₈₉"
_SUBSCRIPT_TO_ASCII = str.maketrans(SUBSCRIPT_DIGITS, "0123456789")
_SUBSCRIPT_ZERO = re.compile(r"0([₀-₉]+)")
_SUFFIX = {"": 0, "K": 3, "M": 6, "B": 9, "BN": 9, "T": 12}
_AMOUNT = re.compile(r"^(?P<sign>[-+]?)(?P<num>\d+(?:\.\d+)?|\.\d+)(?P<suffix>K|M|BN|B|T)?$", re.IGNORECASE)
_MINUS_SIGNS = "−–‒﹣－"  # unicode minus, en dash, figure dash, small/fullwidth hyphen-minus
_UP_ARROWS = "▲△↑⬆⏶🔼"
_DOWN_ARROWS = "▼▽↓⬇⏷🔽"
_MISSING = {"", "-", "--", "—", "–", "n/a", "na", "none", "null", "?"}
_NOISE = re.compile(r"[\s,$\u00a0\u202f\u2009'_]|US\$|USD", re.IGNORECASE)


class NumberFormatError(ValueError):
    """A cell's text is not a number in any format CoinMarketCap uses."""


def is_missing(text: str) -> bool:
    """True for CoinMarketCap's "no data" placeholders (``--``, ``N/A``, empty)."""
    return text.strip().lower() in _MISSING


def _expand_subscript_zeros(text: str) -> str:
    return _SUBSCRIPT_ZERO.sub(lambda m: "0" * int(m.group(1).translate(_SUBSCRIPT_TO_ASCII)), text)


def _normalise(text: str) -> str:
    cleaned = _expand_subscript_zeros(text)
    for minus in _MINUS_SIGNS:
        cleaned = cleaned.replace(minus, "-")
    return _NOISE.sub("", cleaned)


def parse_amount(text: str) -> Decimal:
    """Parse a money amount or volume (``$1,234.56``, ``$0.0₄5123``, ``$12.34B``) exactly."""
    cleaned = _normalise(text)
    match = _AMOUNT.match(cleaned)
    if not match:
        raise NumberFormatError(f"not an amount: {text!r}")
    try:
        value = Decimal(match.group("num"))
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets digits through
        raise NumberFormatError(f"not an amount: {text!r}") from exc
    exponent = _SUFFIX[(match.group("suffix") or "").upper()]
    if exponent:
        value = value.scaleb(exponent)
    if match.group("sign") == "-":
        value = -value
    return value


def parse_percent(text: str, negative_hint: bool = False) -> Decimal:
    """Parse a percentage change (``12.34%``, ``−3.4%``, ``▼ 5%``) into a signed number of percent.

    ``negative_hint`` carries a sign conveyed outside the text (CoinMarketCap prints an unsigned
    number next to a caret-down icon); an explicit sign or arrow in the text wins over the hint.
    """
    cleaned = text.strip()
    negative = negative_hint
    if any(arrow in cleaned for arrow in _DOWN_ARROWS):
        negative = True
    elif any(arrow in cleaned for arrow in _UP_ARROWS):
        negative = False
    for arrow in _UP_ARROWS + _DOWN_ARROWS:
        cleaned = cleaned.replace(arrow, "")
    cleaned = _normalise(cleaned)
    if not cleaned.endswith("%"):
        raise NumberFormatError(f"not a percentage: {text!r}")
    cleaned = cleaned[:-1]
    if cleaned.startswith(("-", "+")):
        negative = cleaned[0] == "-"
        cleaned = cleaned[1:]
    if not re.fullmatch(r"\d+(?:\.\d+)?|\.\d+", cleaned):
        raise NumberFormatError(f"not a percentage: {text!r}")
    value = Decimal(cleaned)
    return -value if negative and value else value


def parse_rank(text: str) -> int:
    """Parse a rank cell (``1``, ``#1``, ``1.``) into a positive int."""
    cleaned = text.strip().lstrip("#").rstrip(".").strip()
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise NumberFormatError(f"not a rank: {text!r}")
    return int(cleaned)
