"""Values and validation errors as people read them: no schema internals in a message a person sees.

msgspec says ``Expected `str` of length >= 1 - at `$.contract.symbol` ``; a person wants
``contract.symbol: expected text of at least 1 character``. Used for requests (the ROUTER's `invalid`
replies), the configuration file and flags, and any number shown in a message (never `1e+09`).
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec

_TYPES = {
    "int": "a whole number",
    "float": "a number",
    "decimal": "a number",
    "str": "text",
    "bool": "true or false",
    "null": "nothing (nil)",
    "object": "a map",
    "array": "a list",
    "bytes": "bytes",
}
_PATTERNS = {
    r"^[A-Za-z0-9_.:\-]+$": "only letters, digits and _ . : -",
    r"^[A-Za-z0-9_\-]+$": "only letters, digits, _ and -",
}
_AT = re.compile(r"^(?P<what>.*?) - at `\$(?P<path>[^`]*)`$", re.S)


PLAIN_DIGITS = 40  # a number with more digits than this before or after the point is shown as 1E+50


def plain(value: float | int | Decimal) -> str:
    """A number as a person writes it: 1000000000, 0.25, 1234.5 (never 1e+09, never 10.0). Exact for any
    size (no decimal context rounds it); NaN and Infinity as such, and a number too long to write out
    (`PLAIN_DIGITS`, as 1e999999 from a request would be) in scientific notation."""
    if isinstance(value, bool):
        return str(value)
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        return str(number)
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:  # 10.0 is 10, 0.250 is 0.25
        digits, exponent = digits[:-1], exponent + 1
    if exponent < 0 and digits == (0,):
        exponent = 0  # 0E-10 is 0
    trimmed = Decimal((sign, digits, exponent))
    if abs(trimmed.adjusted()) > PLAIN_DIGITS:
        return str(trimmed)
    return f"{trimmed:f}"


def _types(text: str) -> str:
    words = [_TYPES.get(t.strip(), t.strip()) for t in text.split("|")]
    return " or ".join(words)


def _constraint(text: str) -> str:
    """`of length >= 1`, `> 0.0`, `<= 5000`, `matching regex '...'` as words."""
    text = text.strip()
    if match := re.fullmatch(r"of length (>=|<=) (\d+)", text):
        n = int(match[2])
        bound = "at least" if match[1] == ">=" else "at most"
        return f"of {bound} {n} character{'s' if n != 1 else ''}"
    if match := re.fullmatch(r"(>=|>|<=|<) (\S+)", text):
        words = {">=": "at least", ">": "greater than", "<=": "at most", "<": "less than"}[match[1]]
        return f"{words} {plain(Decimal(match[2]))}"
    if match := re.fullmatch(r"matching regex '(.*)'", text, re.S):
        pattern = match[1].replace("\\\\", "\\")  # msgspec shows the pattern's repr
        return f"with {_PATTERNS.get(pattern, 'the allowed characters only')}"
    return text


def _sentence(what: str) -> str:
    if match := re.fullmatch(r"Expected `([^`]+)`, got `([^`]+)`", what):
        return f"expected {_types(match[1])}, got {_types(match[2])}"
    if match := re.fullmatch(r"Expected `([^`]+)`(.*)", what, re.S):
        return f"expected {_types(match[1])} {_constraint(match[2])}".strip()
    if match := re.fullmatch(r"Object contains unknown field `([^`]+)`", what):
        return f"unknown field {match[1]!r} (a typo?)"
    if match := re.fullmatch(r"Object missing required field `([^`]+)`", what):
        return f"the required field {match[1]!r} is missing"
    if match := re.fullmatch(r"Invalid enum value (.+)", what):
        return f"{match[1]} is not one of the allowed values"
    if what == "Invalid decimal string":
        return "expected a number (or a decimal number as text)"
    return what


def validation_message(exc: msgspec.ValidationError | str, root: str = "") -> str:
    """`path: what is wrong` for a msgspec validation error (`root` names the top level, if any)."""
    text = str(exc)
    match = _AT.fullmatch(text)
    what, path = (match["what"], match["path"].lstrip(".")) if match else (text, "")
    field = re.fullmatch(r"Object (?:contains unknown|missing required) field `([^`]+)`", what)
    if field and not path:
        return _sentence(what)
    where = path or root
    return f"{where}: {_sentence(what)}" if where else _sentence(what)
