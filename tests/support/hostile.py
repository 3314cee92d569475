"""Messages built to hurt: huge, unbroken, NUL, right-to-left, emoji, many lines, markup.

Shared by the storage and window tests and by ``bench/gui.py``.
"""

from __future__ import annotations

TEXTS = {
    "megabyte": "word " * 200_000,
    "unbroken": "x" * 1_000_000,
    "lines": "\n".join(f"line {i}" for i in range(10_000)),
    "nul": "before\x00after",
    "rtl-emoji": "مرحبا بالعالم — שלום עולם 👩‍👩‍👧‍👦 🎉 🇵🇹 " * 1000,
    "html": "<script>alert(1)</script><img src='http://example.com/x.png'>",
}
