"""Text as SQLite can store it."""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """Text SQLite can store: lone surrogates (from JSON escapes, odd clipboards) become U+FFFD.

    A Python str never holds a valid surrogate pair, so any surrogate is lone.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def one_line(text: str, limit: int = 60) -> str:
    """Text from a file as an error message quotes it: on one line, at most ``limit`` long."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON object column (metadata, params): ``{}`` when empty or not an object.

    The standard library, not orjson: imported metadata may hold integers beyond 64 bits.
    """
    if not text or text == "{}":
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
