"""Coercion of single TMAPI JSON values: numbers, prices, flags, text, ids.

Real ``item_detail`` payloads send the same field as ``"29.89"``, ``29.89``,
``"¥29.89"``, ``"25.90-29.89"``, ``null``, ``"null"`` or ``""``. Every helper
here takes any JSON-like value and returns either a clean Python value or
``None`` ("no usable value"); none of them raises.

Money never goes through ``float`` arithmetic: strings and ``Decimal`` (what
``json.loads(..., parse_float=Decimal)`` produces) are converted exactly; a
``float`` that still arrives is converted from its shortest ``repr``, which is
the literal the JSON contained.

Bounds keep garbage out of the database and out of later arithmetic: a price
must lie in ``[MIN_PRICE, MAX_PRICE)``, an integer in ``[-MAX_INT, MAX_INT)``
(a signed 64-bit column), a numeric string is at most ``MAX_NUMBER_LEN``
characters and an id at most ``MAX_ID_LEN``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

#: Smallest value accepted as a price; anything lower (including 0) is "no price".
MIN_PRICE: Final = Decimal("0.0001")
#: Prices at or above this are treated as garbage, not as a price.
MAX_PRICE: Final = Decimal(10) ** 10
#: Integers (stock, quantities, item ids) must fit a signed 64-bit column.
MAX_INT: Final = 2**63
#: Longer numeric strings are not numbers we can use.
MAX_NUMBER_LEN: Final = 40
#: Longer ids are not ids we can store.
MAX_ID_LEN: Final = 64

#: Strings that mean "no value" (compared case-insensitively, after stripping).
NO_VALUE_STRINGS: Final = frozenset({"", "null", "none", "nil", "undefined", "nan"})

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_THOUSANDS = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")
_INTEGRAL = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_CURRENCY_PREFIXES: Final = ("us$", "rmb", "cny", "¥", "￥", "$")
_CURRENCY_SUFFIXES: Final = ("元", "rmb", "cny")
_RANGE = re.compile(r"(.+?)\s*[-~～—–]\s*(.+)")


_LONGEST_NO_VALUE: Final = max(map(len, NO_VALUE_STRINGS))


def is_no_value(value: object) -> bool:
    """True for ``None`` and for the strings that stand for "no value"."""
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    text = value.strip()
    return len(text) <= _LONGEST_NO_VALUE and text.lower() in NO_VALUE_STRINGS


def as_mapping(value: object) -> Mapping[Any, Any]:
    """``value`` if it is a JSON object, else an empty mapping."""
    # ``dict`` first: the ABC check is several times slower than a type check.
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def as_list(value: object) -> Sequence[Any]:
    """``value`` if it is a JSON array, else an empty sequence."""
    return value if isinstance(value, list | tuple) else ()


def first_present(mapping: Mapping[Any, Any], *keys: str) -> object:
    """The value of the first key of ``keys`` whose value is not "no value"."""
    for key in keys:
        value = mapping.get(key)
        if value is not None and not (isinstance(value, str) and is_no_value(value)):
            return value
    return None


def first_id(mapping: Mapping[Any, Any], keys: tuple[str, ...]) -> str | None:
    """``parse_id(first_present(mapping, *keys))``, in one pass."""
    for key in keys:
        value = mapping.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return parse_id(value)
        text = value.strip()
        if len(text) <= _LONGEST_NO_VALUE and text.lower() in NO_VALUE_STRINGS:
            continue
        return text if len(text) <= MAX_ID_LEN else None
    return None


def _strip_currency(text: str) -> str:
    """Remove one leading and one trailing currency marker and surrounding space."""
    text = text.strip()
    lowered = text.lower()
    for prefix in _CURRENCY_PREFIXES:
        if lowered.startswith(prefix):
            text = text[len(prefix) :].lstrip()
            lowered = text.lower()
            break
    for suffix in _CURRENCY_SUFFIXES:
        if lowered.endswith(suffix):
            text = text[: -len(suffix)].rstrip()
            break
    return text


def _number_text(text: str) -> Decimal | None:
    """A plain decimal literal (optionally with a currency marker or thousands commas)."""
    if len(text) <= MAX_NUMBER_LEN and _NUMBER.fullmatch(text):
        return Decimal(text)
    text = _strip_currency(text)
    if len(text) > MAX_NUMBER_LEN:
        return None
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if not _NUMBER.fullmatch(text):
        return None
    return Decimal(text)


def parse_decimal(value: object) -> Decimal | None:
    """A single finite number as ``Decimal``, or ``None``.

    Accepts ``int``, ``Decimal``, ``float`` and strings like ``"29.89"``,
    ``"¥29.89"``, ``"￥ 29.89"``, ``"29.89元"`` or ``"1,299.00"``. A range such as
    ``"25.90-29.89"`` is not a single number and gives ``None`` (see
    :func:`parse_price_range`). Booleans, NaN and infinities give ``None``.
    """
    if isinstance(value, str):
        return _number_text(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if -MAX_INT <= value < MAX_INT else None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    return None


def parse_int(value: object) -> int | None:
    """A whole number as ``int`` (``"4975"``, ``4975``, ``"4975.0"``, ``"4,975"``), or ``None``.

    Non-integral numbers, booleans and values outside a signed 64-bit range
    give ``None``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -MAX_INT <= value < MAX_INT else None
    if isinstance(value, str):
        if value.isdigit() and value.isascii() and len(value) <= MAX_NUMBER_LEN:
            number = int(value)  # the common "4975": what the general path gives
            return number if number < MAX_INT else None
        text = value.strip()
        if _THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
        if len(text) > MAX_NUMBER_LEN or not _INTEGRAL.fullmatch(text):
            return None
        number = int(text.split(".", 1)[0])
        return number if -MAX_INT <= number < MAX_INT else None
    if isinstance(value, Decimal | float):
        decimal = parse_decimal(value)
        if decimal is None or not -MAX_INT <= decimal < MAX_INT:
            return None
        return int(decimal) if decimal == decimal.to_integral_value() else None
    return None


def parse_count(value: object) -> int | None:
    """A non-negative whole number (stock, quantity), or ``None``."""
    if type(value) is int:  # the common case; ``bool`` is not ``int`` here
        return value if 0 <= value < MAX_INT else None
    number = parse_int(value)
    return number if number is not None and number >= 0 else None


def parse_price(value: object) -> Decimal | None:
    """A single positive price, or ``None``.

    Zero, negative, absurdly large values and ranges are "no price": a payload
    must never turn into a price of 0.
    """
    if (
        isinstance(value, str)
        and len(value) <= MAX_NUMBER_LEN
        and value.isascii()
        and value.replace(".", "", 1).isdigit()
    ):
        # The common "29.89" (ASCII digits, at most one dot) always matches
        # ``_NUMBER``: this is what parse_decimal gives, without the regex.
        price: Decimal | None = Decimal(value)
    else:
        price = parse_decimal(value)
    return price if price is not None and MIN_PRICE <= price < MAX_PRICE else None


def parse_price_range(value: object) -> tuple[Decimal, Decimal] | None:
    """``(low, high)`` from a range like ``"25.90-29.89"`` or a single price, or ``None``.

    Each end may carry a currency marker (``"¥25.90 ~ ¥29.89"``); a range with
    an invalid end is ``None`` as a whole.
    """
    single = parse_price(value)
    if single is not None:
        return single, single
    if not isinstance(value, str) or len(value) > 2 * MAX_NUMBER_LEN:
        return None
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        return None
    low, high = parse_price(match.group(1)), parse_price(match.group(2))
    if low is None or high is None:
        return None
    return min(low, high), max(low, high)


def parse_bool(value: object) -> bool | None:
    """A flag from a JSON boolean, ``0``/``1`` or words like ``"true"``; else ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "y"):
            return True
        if text in ("false", "0", "no", "n"):
            return False
    return None


def parse_text(value: object) -> str | None:
    """A stripped, non-empty string, or ``None`` (non-strings and "no value" strings)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) <= _LONGEST_NO_VALUE and text.lower() in NO_VALUE_STRINGS:
        return None
    return text


def parse_id(value: object) -> str | None:
    """An identifier as text: a string, or a non-negative whole number; else ``None``.

    ``5674557541674`` and ``"5674557541674"`` give the same id. Strings longer
    than ``MAX_ID_LEN`` are rejected.
    """
    if isinstance(value, str):
        text = parse_text(value)
        return text if text is not None and len(text) <= MAX_ID_LEN else None
    number = parse_int(value)
    return str(number) if number is not None and number >= 0 else None


def parse_url(value: object) -> str | None:
    """An ``http(s)`` URL; protocol-relative ``//host/...`` gets ``https:``; else ``None``."""
    text = parse_text(value)
    if text is None:
        return None
    if text.startswith("//"):
        text = "https:" + text
    return text if text.lower().startswith(("https://", "http://")) else None
